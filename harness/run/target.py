"""What a run loads: the target's endpoints (the local stack started, or reused, when the
scenario asks for it; a deployed target probed first) and the tokens its users carry."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from harness.auth.keys import mint_for_run, minter_for, read_token_file
from harness.auth.login import login_tokens
from harness.config.profile import Profile
from harness.config.scenario import Scenario
from harness.errors import TargetUnreachable
from records.documents import Manifest
from records.errors import HarnessError, InputError
from stack import local
from stack.errors import StackError
from stack.roles import StackOptions

# Endpoint names that carry credentials: used by monitors, never written to results.
PRIVATE_ENDPOINTS = ("database_url", "redis_url")
# The endpoints load goes to (the safety check's subject).
LOADED_ENDPOINTS = ("api_base", "ws_base", "rtmp_url", "hls_base")


class RunTarget:
    """The target of one run. `connect()` gives its endpoints; `stop()` takes the local stack
    down again when this run started it (or inherited it from the run it resumes)."""

    def __init__(self, scenario: Scenario, profile: Profile, stack_dir: Path,
                 resumed: Manifest | None = None) -> None:
        self.scenario, self.profile, self.stack_dir = scenario, profile, stack_dir
        self.resumed = resumed
        self.started_stack = False
        self.stack_identity: dict[str, Any] | None = None
        self._logged_in: tuple[str, ...] | None = None

    def connect(self) -> dict[str, str]:
        """The target's endpoints (the local stack started if needed), then the tokens' source
        tried once: a login that fails ends the run before anything is recorded or loaded."""
        endpoints = self._endpoints()
        if self.scenario.target.stack != "local":
            self._probe(endpoints["api_base"])
        try:
            self.tokens(1, endpoints["api_base"])
        except HarnessError:
            self.stop()
            raise
        return endpoints

    def stop(self) -> None:
        if self.started_stack:
            self.started_stack = False
            local.down(self.stack_dir)

    def _endpoints(self) -> dict[str, str]:
        target = self.scenario.target
        if target.stack == "local":
            try:
                wanted = self.scenario.stack
                state, reused = local.up(StackOptions(
                    run_dir=self.stack_dir, instances=wanted.instances,
                    standby=wanted.standby, latency_proxy=tuple(wanted.latency_proxy),
                    service_env=dict(wanted.service_env), analytics=wanted.analytics))
            except StackError as exc:
                raise TargetUnreachable(f"local stack: {exc}") from None
            self.stack_identity = {"supervisor_pid": state.supervisor_pid,
                                   "started_at": state.started_at}
            # A resumed soak owns the stack its killed run started (and left running).
            self.started_stack = not reused or self._inherits_stack()
            if reused:
                self._check_reused(state.roles)
            self._check_allowed(state.endpoints)
            return state.endpoints
        base = str(target.base_url).rstrip("/")
        return {"api_base": base, "ws_base": target.ws_base or base.replace("http", "ws", 1),
                "rtmp_url": target.rtmp_url or "", "hls_base": target.hls_base or base,
                "metrics_url": base + self.profile.path("metrics")}

    def _probe(self, api_base: str) -> None:
        """A deployed target answers at all (any HTTP status) before anything is created or
        recorded: an unreachable one is an error with no results folder left behind."""
        url = api_base.rstrip("/") + self.profile.path("health")
        try:
            httpx.get(url, timeout=5.0)
        except httpx.HTTPError as exc:
            raise TargetUnreachable(f"target unreachable: GET {url}: {exc}",
                                    hint="check target.base_url (or --target) and that the "
                                         "target runs; nothing was started") from None

    def _inherits_stack(self) -> bool:
        """True when the run this one resumes started the very stack running now."""
        earlier = self.resumed.stack_started_by_run if self.resumed else None
        return bool(earlier) and earlier == self.stack_identity

    def _check_allowed(self, endpoints: dict[str, str]) -> None:
        """A stack listening off loopback (`stack up --listen ADDR`) is loaded only when the
        scenario names its address in target.allow_hosts."""
        target = self.scenario.target
        hosts = sorted({urlsplit(endpoints[name]).hostname or "" for name in LOADED_ENDPOINTS
                        if endpoints.get(name)} - {""})
        refused = [host for host in hosts if not target.allowed(host)]
        if refused:
            self.stop()
            raise InputError([f"local stack: listens on {host}, which is not loopback and not "
                              "in target.allow_hosts" for host in refused],
                             hint="list the address in target.allow_hosts to load it "
                                  "deliberately (docs/distributed.md)")

    def _check_reused(self, running: dict[str, Any]) -> None:
        """A stack already running in the folder must have the parts the scenario needs."""
        wanted, problems = self.scenario.stack, []
        if wanted.standby and "postgres-standby" not in running:
            problems.append("stack.standby: the stack already running has no standby")
        if wanted.analytics and "kafka" not in running:
            problems.append("stack.analytics: the stack already running has no analytics "
                            "roles")
        problems += [f"stack.latency_proxy: the stack already running has no {r} proxy"
                     for r in wanted.latency_proxy if f"{r}-proxy" not in running]
        problems += wanted.service_env_problems(local.started_service_env(self.stack_dir))
        if problems:
            raise InputError(problems, hint=f"stop it first (`nova-harness stack down --run-dir "
                                            f"{self.stack_dir}`) or use another --run-dir")

    def tokens(self, count: int, api_base: str) -> tuple[str, ...]:
        """`count` tokens that last the whole run, reused in turn when the source has fewer
        (checked up front for a token file, obtained by logging in for the login endpoint,
        minted to live the run's length otherwise)."""
        auth = self.scenario.auth
        if auth.mode == "token_file":
            found = read_token_file(Path(str(auth.token_file)))
        elif auth.mode == "login" and auth.login is not None:
            if self._logged_in is None:  # one login per credential for the whole run
                self._logged_in = login_tokens(auth.login, api_base,
                                               self.scenario.planned_viewers,
                                               self.scenario.load.total_s)
            found = self._logged_in
        else:
            minter = minter_for(
                run_dir=self.stack_dir,
                secret_env=auth.secret_env if auth.mode == "secret_env" else None,
                key_file=Path(auth.key_file) if auth.mode == "key_file" and auth.key_file
                else None, named_by="auth.")
            found = mint_for_run(minter, count, self.scenario.load.total_s)
        return tuple(found[i % len(found)] for i in range(max(1, count)))
