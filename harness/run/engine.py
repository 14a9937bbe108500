"""`nova-harness run`: validate → (local stack) → streams → viewers and API clients through
Locust → publishers → phases → stop → results folder. Ctrl-C stops the load and publishers,
flushes results and marks the run `aborted`."""

from __future__ import annotations

import datetime as dt
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
import httpx
import psutil
import pyarrow as pa
from locust.env import Environment

from harness import __version__
from harness.auth.keys import mint_for_run, minter_for, read_token_file, token_file_problems
from harness.auth.login import login_tokens, read_credentials
from harness.chaos.acked_writes import WriteLedger
from harness.chaos.schedule import ChaosRunner, Occurrence, check_experiments, describe, plan
from harness.config.redact import redact_credentials
from harness.config.scenario import load_scenario
from harness.errors import TargetUnreachable
from harness.load.api_client import ApiArrivalsUser
from harness.load.broadcasters import Fleet, encoded_clip
from harness.load.context import RunPlan, UserContext
from harness.load.shipper import MESSAGE
from harness.load.viewer import ViewerUser
from harness.monitor.api_audit import StreamAudit
from harness.monitor.pollers import NginxStatSource, PostgresSource, RedisSource
from harness.monitor.processes import (
    MetricsScraper,
    ProcessSelection,
    ResourceSampler,
    local_stack_roles,
)
from harness.monitor.promql import PrometheusSource
from harness.monitor.selfwatch import SelfWatch
from harness.run.livestats import LiveStats
from harness.runtime import allocator, memtrace
from harness.runtime.gctune import tune_gc
from harness.soak.cycles import CycleDriver, InterimReporter
from harness.soak.resume import Resume, segment_phases
from records.documents import Manifest, Status, dump
from records.errors import HarnessError, InputError
from records.provenance import file_sha256, source_commit
from records.recorder import Recorder, atomic_write_json, writer_identity
from records.schema import RESULTS_SCHEMA_VERSION
from stack import local
from stack.errors import StackError
from stack.roles import StackOptions
from stack.state import read_state


@dataclass(frozen=True)
class RunOptions:
    scenario_path: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    results_root: Path = Path("results")
    workers: int = 0
    web_port: int | None = None
    stack_dir: Path = field(default_factory=local.default_run_dir)
    progress: bool = True
    allow_targets: tuple[str, ...] = ()  # hosts chaos may break besides the local stack
    resume: Resume | None = None  # continue this earlier run into its own folder


@dataclass
class RunOutcome:
    results_dir: Path
    status: str
    manifest: dict[str, Any]


STATUS_EVERY_TICKS = 10  # flush-loop ticks of 0.5 s: status.json every 5 s
COMPACT_EVERY_TICKS = 1200  # result parts merged every 10 minutes


def new_run_id(name: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{name}-{uuid.uuid4().hex[:6]}"


def user_classes(viewers: int, api_clocks: int = 1) -> list[type]:
    """Run-specific subclasses: Locust reads `fixed_count` from the class."""
    viewer = type("Viewer", (ViewerUser,), {"fixed_count": viewers, "abstract": False,
                                           "__module__": __name__})
    api = type("ApiClients", (ApiArrivalsUser,), {"fixed_count": api_clocks, "abstract": False,
                                                  "__module__": __name__})
    return [viewer, api]


class Run:
    """One run; `execute()` is the whole life cycle."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.scenario, self.profile = load_scenario(options.scenario_path,
                                                    dict(options.overrides))
        problems, hint = [], None
        if options.workers < 0 or options.workers > 32:
            problems.append(f"--workers {options.workers}: must be between 0 and 32")
        try:
            self.trace_memory_s = memtrace.interval_from_env()
        except InputError as exc:
            problems += exc.problems
            hint = exc.hint
        auth = self.scenario.auth
        if auth.mode == "token_file":
            problems += token_file_problems(Path(str(auth.token_file)),
                                            self.scenario.load.total_s, time.time())
        if auth.login is not None and auth.mode == "login":
            try:
                read_credentials(Path(auth.login.credentials_file))
            except InputError as exc:
                problems += exc.problems
        if problems:
            raise InputError(problems, hint)
        self.run_id = new_run_id(self.scenario.name)
        self.results_dir = options.results_root / self.run_id
        if options.resume is not None:
            self.run_id, self.results_dir = options.resume.run_id, options.resume.results_dir
        self.stop_requested = False
        self.stop_reason = "completed"
        self.started_stack = False
        self.stack_identity: dict[str, Any] | None = None
        self.harness_commit = source_commit()  # once: the manifest is rewritten often
        self.stages: list[dict[str, Any]] = []
        self.worker_procs: list[subprocess.Popen[bytes]] = []
        self.endpoints_public: dict[str, str] = {}
        self.ids_by_key: dict[str, str] = {}  # filled as streams are created (nginx /stat)
        self._logged_in: tuple[str, ...] | None = None
        self.started_at: float | None = None
        self.chaos: ChaosRunner | None = None
        self.ledger: WriteLedger | None = None
        self.audit: StreamAudit | None = None
        self.cycles: CycleDriver | None = None
        self.interim: InterimReporter | None = None
        self.faults_planned = self._plan_chaos()

    def _plan_chaos(self) -> list[Occurrence]:
        """Check the scenario's experiments (every problem at once) and the allow-list before
        anything starts."""
        s = self.scenario
        if not s.chaos:
            return []
        problems = []
        local_target = s.target.stack == "local"
        if not local_target:
            host = urlsplit(str(s.target.base_url)).hostname or ""
            if host not in self.options.allow_targets:
                problems.append(f"chaos: target {host} is not allow-listed (only the local "
                                f"stack is); pass --allow-target {host} if it may be broken")
        problems += check_experiments(s.chaos, self.options.scenario_path.parent,
                                      standby=s.stack.standby,
                                      proxied=tuple(s.stack.latency_proxy),
                                      local_target=local_target)
        if problems:
            raise InputError(problems, hint="see docs/chaos.md")
        return plan(s.chaos, self.options.scenario_path.parent, s.load.total_s)

    def chaos_plan(self) -> list[str]:
        """What the run will break, one line per planned experiment start."""
        return [f"at {o.at_s:.0f}s: {describe(o.path, o.variables)}"
                for o in self.faults_planned]

    # -- manifest ------------------------------------------------------------------------

    def manifest(self, status: str, **extra: Any) -> dict[str, Any]:
        """The manifest as written: built through records' model, so a misnamed or mistyped
        field fails here, in the writer, not in some later analysis."""
        s, resumed = self.scenario, self.options.resume
        document: dict[str, Any] = {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "run_id": self.run_id,
            "status": status,
            "writer": writer_identity(),
            "stack_started_by_run": self.stack_identity if self.started_stack else None,
            "harness_version": __version__,
            "harness_commit": self.harness_commit,
            "scenario_sha256": file_sha256(self.options.scenario_path),
            "scenario_file": str(self.options.scenario_path),
            "scenario": redact_credentials(s.model_dump(mode="json")),
            "overrides": redact_credentials({k: str(v) for k, v in
                                             self.options.overrides.items()}),
            "profile": self.profile.name,
            "target": self.endpoints_public,
            "host": {"hostname": socket.gethostname(), "cpus": os.cpu_count(),
                     "memory_bytes": psutil.virtual_memory().total,
                     "python": platform.python_version(),
                     "arrow_pool": pa.default_memory_pool().backend_name},
            "planned": {"viewers": s.planned_viewers, "streams": s.streams.count,
                        "duration_s": resumed.planned_s if resumed else s.load.total_s,
                        "api_rate_per_s": s.api_clients.rate_per_s,
                        "workers": self.options.workers},
            "started_at": resumed.started_at if resumed else self.started_at,
            "stages": self.all_stages(),
            "phases": self._phases(),
            "gaps": resumed.gaps if resumed else [],
            "faults": self.chaos.faults if self.chaos else [],
        }
        document.update(extra)
        return dump(Manifest.model_validate(document))

    @property
    def api_clocks(self) -> int:
        """API arrival clocks: one per worker process, each with its share of the rate."""
        return max(1, self.options.workers)

    def all_stages(self) -> list[dict[str, Any]]:
        """This run's stages, after those of the run it resumes."""
        return [*(self.options.resume.stages if self.options.resume else []), *self.stages]

    def _phases(self) -> list[dict[str, Any]]:
        load = self.scenario.load
        return segment_phases(self.all_stages(), load.warmup, load.cooldown)

    def write_manifest(self, status: str, **extra: Any) -> dict[str, Any]:
        document = self.manifest(status, **extra)
        atomic_write_json(self.results_dir / "manifest.json", document)
        return document

    # -- set-up --------------------------------------------------------------------------

    def endpoints(self) -> dict[str, str]:
        target = self.scenario.target
        if target.stack == "local":
            try:
                wanted = self.scenario.stack
                state, reused = local.up(StackOptions(
                    run_dir=self.options.stack_dir, instances=wanted.instances,
                    standby=wanted.standby, latency_proxy=tuple(wanted.latency_proxy),
                    service_env=dict(wanted.service_env)))
            except StackError as exc:
                raise TargetUnreachable(f"local stack: {exc}") from None
            self.stack_identity = {"supervisor_pid": state.supervisor_pid,
                                   "started_at": state.started_at}
            # A resumed soak owns the stack its killed run started (and left running).
            self.started_stack = not reused or self._inherits_stack()
            if reused:
                self._check_reused(state.roles)
            return state.endpoints
        base = str(target.base_url).rstrip("/")
        return {"api_base": base, "ws_base": target.ws_base or base.replace("http", "ws", 1),
                "rtmp_url": target.rtmp_url or "", "hls_base": target.hls_base or base,
                "metrics_url": base + self.profile.path("metrics")}

    def _endpoints_and_tokens(self) -> dict[str, str]:
        """The target's endpoints (the local stack started if needed), then the tokens' source
        tried once: a login that fails ends the run before anything is recorded or loaded."""
        endpoints = self.endpoints()
        if self.scenario.target.stack != "local":
            self._probe(endpoints["api_base"])
        try:
            self.tokens(1, endpoints["api_base"])
        except HarnessError:
            if self.started_stack:
                local.down(self.options.stack_dir)
            raise
        return endpoints

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
        resumed = self.options.resume
        earlier = resumed.manifest.stack_started_by_run if resumed else None
        return bool(earlier) and earlier == self.stack_identity

    def _check_reused(self, running: dict[str, Any]) -> None:
        """A stack already running in the folder must have the parts the scenario needs."""
        wanted, problems = self.scenario.stack, []
        if wanted.standby and "postgres-standby" not in running:
            problems.append("stack.standby: the stack already running has no standby")
        problems += [f"stack.latency_proxy: the stack already running has no {r} proxy"
                     for r in wanted.latency_proxy if f"{r}-proxy" not in running]
        problems += wanted.service_env_problems(local.started_service_env(self.options.stack_dir))
        if problems:
            raise InputError(problems, hint=f"stop it first (`nova-harness stack down --run-dir "
                                            f"{self.options.stack_dir}`) or use another "
                                            "--run-dir")

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
                run_dir=self.options.stack_dir,
                secret_env=auth.secret_env if auth.mode == "secret_env" else None,
                key_file=Path(auth.key_file) if auth.mode == "key_file" and auth.key_file
                else None, named_by="auth.")
            found = mint_for_run(minter, count, self.scenario.load.total_s)
        return tuple(found[i % len(found)] for i in range(max(1, count)))

    # -- the run -------------------------------------------------------------------------

    def execute(self, show: Callable[[Run], None] | None = None) -> RunOutcome:
        self.started_at = time.time()
        allocator.limit_arenas()  # before any thread (a login's DNS, the writer) makes an arena
        endpoints = self._endpoints_and_tokens()
        self.results_dir.mkdir(parents=True, exist_ok=True)
        (self.results_dir / "logs").mkdir(exist_ok=True)
        self.recorder = Recorder(self.results_dir)
        self.live = LiveStats(self.recorder)
        self.ctx = UserContext(worker="master" if self.options.workers else "local",
                               sink=self.live)
        self.endpoints_public = {k: v for k, v in endpoints.items()
                                 if not k.endswith(("database_url", "redis_url"))}
        self.write_manifest("running")
        if self.options.resume is not None:
            gap = self.options.resume.gaps[-1]
            self.ctx.event("run_resumed", value=gap["end"] - gap["start"])
        tune_gc()
        trace = memtrace.MemoryTrace(self.results_dir / "logs" / "memory-trace.log",
                                     self.trace_memory_s) if self.trace_memory_s else None
        self.watch = SelfWatch(self.ctx)
        trimmer = allocator.trimmer()
        self.monitors = self._monitors(endpoints)
        self.fleet: Fleet | None = None
        status = "crashed"
        try:
            self._install_signals()
            self.watch.start()
            trimmer.start()
            if trace is not None:
                trace.start()
            for monitor in self.monitors:
                monitor.start()
            flusher = gevent.spawn(self._flush_loop)
            status = self._drive(endpoints, show)
            flusher.kill()
        finally:
            self._stop_soak()
            self._stop_faults()
            if self.audit is not None:
                self.audit.close()
            if self.fleet is not None:
                self.fleet.stop_all()
            self._stop_workers()
            self.watch.stop()
            trimmer.stop()
            if trace is not None:
                trace.stop()
            for monitor in self.monitors:
                monitor.stop()
            self.recorder.close()
            manifest = self.write_manifest(
                status, ended_at=time.time(), stop_reason=self.stop_reason,
                streams=[b.plan.id for b in self.fleet.broadcasts] if self.fleet else [],
                broadcasters=self.fleet.states() if self.fleet else [],
                validity=self.watch.summary(), rows=self.recorder.rows_seen,
                write_errors=self.recorder.write_errors,
                viewers_connected=len(self.live.ever_connected))
            self.write_status(status)
            if self.started_stack:
                local.down(self.options.stack_dir)
        return RunOutcome(self.results_dir, status, manifest)

    def _monitors(self, endpoints: dict[str, str]) -> list[Any]:
        """The target's processes (local stack: from its state file, re-read every sample so
        a restarted instance is followed), its /metrics, and the nginx-rtmp, PostgreSQL and
        Redis sources (local stack: its own endpoints; otherwise `monitors:` in the scenario)."""
        sink, spec = self.ctx.sink, self.scenario.monitors
        given: dict[str, str | None] = {"nginx_stat_url": spec.nginx_stat_url,
                                        "postgres_dsn": spec.postgres_dsn,
                                        "redis_url": spec.redis_url}
        monitors: list[Any] = []
        selected = ProcessSelection(spec.processes)
        if self.scenario.target.stack == "local":
            stack_dir = self.options.stack_dir
            monitors.append(ResourceSampler(
                sink, lambda: {**local_stack_roles(read_state(stack_dir).roles), **selected()},
                spec.interval_s))
            found = {"nginx_stat_url": endpoints.get("stat_url"),
                     "postgres_dsn": endpoints.get("monitor_database_url",
                                                   endpoints.get("database_url")),
                     "redis_url": endpoints.get("monitor_redis_url", endpoints.get("redis_url"))}
            given = {name: given.get(name) or found[name] for name in found}
        else:
            monitors.append(ResourceSampler(sink, selected, spec.interval_s))
        if spec.prometheus is not None:
            monitors.append(PrometheusSource(sink, spec.prometheus))
        if endpoints.get("metrics_url"):
            monitors.append(MetricsScraper(sink, endpoints["metrics_url"]))
        if given.get("nginx_stat_url"):
            monitors.append(NginxStatSource(sink, str(given["nginx_stat_url"]),
                                            self.ids_by_key))
        if given.get("postgres_dsn"):
            monitors.append(PostgresSource(sink, str(given["postgres_dsn"])))
        if given.get("redis_url"):
            monitors.append(RedisSource(sink, str(given["redis_url"])))
        return monitors

    def _install_signals(self) -> None:
        def request_stop() -> None:
            self.stop_requested = True
            self.stop_reason = "interrupted"
        gevent.signal_handler(signal.SIGINT, request_stop)
        gevent.signal_handler(signal.SIGTERM, request_stop)

    def _flush_loop(self) -> None:
        ticks = 0
        while True:
            gevent.sleep(0.5)
            self.recorder.maybe_flush()
            ticks += 1
            if ticks % STATUS_EVERY_TICKS == 0:
                self.write_status("running")
            if ticks % COMPACT_EVERY_TICKS == 0:
                gevent.spawn(self.recorder.compact_now)

    def write_status(self, status: str) -> None:
        """`status.json`: where a long run is, for a user or a watchdog (docs/soak.md)."""
        resumed = self.options.resume
        planned = resumed.planned_s if resumed else self.scenario.load.total_s
        # The whole run's time: a resumed soak's earlier segments count, its gaps do not.
        elapsed = sum((stage.get("end") or time.time()) - stage["start"]
                      for stage in self.all_stages())
        atomic_write_json(self.results_dir / "status.json", dump(Status(**{
            "run_id": self.run_id, "status": status, "updated_at": time.time(),
            "writer": writer_identity(),
            "stage": self.stages[-1]["name"] if self.stages else None,
            "segments": 1 + len(resumed.gaps) if resumed else 1,
            "gaps_s": round(sum(g["end"] - g["start"] for g in resumed.gaps), 1)
            if resumed else 0.0,
            "elapsed_s": round(elapsed, 1), "planned_s": planned,
            "progress": round(min(1.0, elapsed / planned), 4) if planned else None,
            "viewers_connected": sum(self.live.connected.values()),
            "viewers_planned": self.scenario.planned_viewers,
            "cycles_done": self.cycles.done if self.cycles else 0,
            "rows": self.recorder.rows_seen, "write_errors": len(self.recorder.write_errors),
            "last_interim": self.interim.last if self.interim else None,
            "resumed": self.options.resume is not None})))

    def _environment(self) -> Environment:
        classes = user_classes(self.scenario.planned_viewers, self.api_clocks)
        if self.scenario.api_clients.rate_per_s <= 0:
            classes = classes[:1]
        env = Environment(user_classes=classes)
        env.nova = self.ctx  # type: ignore[attr-defined]
        if self.options.workers:
            env.create_master_runner("127.0.0.1", 0)
            assert env.runner is not None
            env.runner.register_message(MESSAGE, lambda msg, **_: self._receive(msg.data))
        else:
            env.create_local_runner()
        if self.options.web_port:
            env.create_web_ui("127.0.0.1", self.options.web_port)
        return env

    def _receive(self, data: dict[str, list[list[Any]]]) -> None:
        for table, rows in data.items():
            self.live.add_many(table, rows)  # the Recorder makes the lists tuples

    def _drive(self, endpoints: dict[str, str], show: Callable[[Run], None] | None) -> str:
        s = self.scenario
        api_tokens = self.tokens(10, endpoints["api_base"])
        self.fleet = Fleet(self.ctx, self.profile, endpoints["api_base"],
                           endpoints["rtmp_url"], endpoints["hls_base"], api_tokens[0],
                           self.results_dir)
        streams = self.fleet.create_streams(s.streams.count, s.streams.title_prefix,
                                            s.streams.region)
        self.ids_by_key.update({stream.key: stream.id for stream in streams})
        plan = RunPlan(
            api_base=endpoints["api_base"], ws_base=endpoints["ws_base"],
            profile=self.profile.model_dump(by_alias=True), streams=tuple(streams),
            viewer_tokens=self.tokens(s.planned_viewers, endpoints["api_base"]),
            api_tokens=api_tokens,
            hls_share=s.viewers.hls_share, info_interval_s=s.viewers.info_interval_s,
            reconnect=s.viewers.reconnect,
            api_rate_per_s=s.api_clients.rate_per_s, api_clocks=self.api_clocks,
            api_mix=dict(s.api_clients.mix), region=s.streams.region,
            ws_client=s.viewers.ws_client)
        self.ctx.set_plan(plan)
        clip = encoded_clip(s.streams.clip) if s.streams.broadcast else None
        env = self._environment()
        runner = env.runner
        assert runner is not None
        if self.options.workers:
            self._start_workers(runner)
            runner.send_message("nova_plan", plan.to_message())
        users = s.planned_viewers + (self.api_clocks if s.api_clients.rate_per_s > 0 else 0)
        spawn_rate = s.load.spawn_rate_per_s or max(1.0, users / max(s.load.ramp, 1.0))
        # Built before the load: its client's TLS context takes ~30 ms of the loop.
        self.audit = StreamAudit(self.ctx, self.profile, endpoints["api_base"], api_tokens[1],
                                 [stream.id for stream in streams])
        self._stage("ramp")
        runner.start(users, spawn_rate=spawn_rate)
        self._start_faults(endpoints, api_tokens[-1])
        if not self._wait(s.load.ramp, show):
            return self._abort(runner)
        if clip is not None:
            self.fleet.publish_all(clip)
            self.fleet.watch()
        self.audit.start()
        self._stage("hold")
        self._start_soak(plan)
        if not self._wait(max(0.0, s.load.hold - (time.time() - self.stages[-1]["start"])),
                          show):
            return self._abort(runner)
        self._stage("ramp_down")
        self._stop_soak()
        self._stop_faults()
        self.fleet.stop_all()  # viewers get stream_ended and close
        ramp_down_end = time.time() + s.load.ramp_down
        self.audit.read_back()
        if self.ledger is not None:
            self.ledger.verify()
        self._wait(max(0.0, ramp_down_end - time.time()), show)
        runner.stop()
        self._end_stage()
        gevent.sleep(1.0)  # let workers ship their last rows
        runner.quit()
        return "completed"

    def _start_soak(self, plan: RunPlan) -> None:
        spec = self.scenario.soak
        if spec is None:
            return
        first = self.options.resume.cycles_done + 1 if self.options.resume else 1
        self.cycles = CycleDriver(self.ctx, spec, plan.ws_client, first_number=first)
        self.cycles.start()
        self.interim = InterimReporter(self.ctx, self.results_dir, spec.report_every)
        self.interim.start()

    def _stop_soak(self) -> None:
        for part in (self.cycles, self.interim):
            if part is not None:
                part.stop()

    def _start_faults(self, endpoints: dict[str, str], token: str) -> None:
        s = self.scenario
        if s.writes.rate_per_s > 0:
            self.ledger = WriteLedger(self.ctx, self.profile, endpoints["api_base"], token,
                                      s.writes.rate_per_s, s.streams.region, self.run_id)
            self.ledger.start()
        if self.faults_planned:
            env = {"NOVA_STACK_DIR": str(self.options.stack_dir),
                   "NOVA_RESULTS_DIR": str(self.results_dir.resolve())}
            self.chaos = ChaosRunner(self.faults_planned, self.results_dir, env, self.ctx,
                                     on_record=lambda: self.write_manifest("running"))
            self.chaos.start(self.stages[0]["start"])

    def _stop_faults(self) -> None:
        """No new faults; a running experiment is interrupted and its rollbacks awaited."""
        if self.chaos is not None:
            self.chaos.stop()
        if self.ledger is not None:
            self.ledger.stop()

    def _abort(self, runner: Any) -> str:
        runner.stop()
        self._end_stage()
        gevent.sleep(0.5)
        runner.quit()
        return "aborted"

    def _stage(self, name: str) -> None:
        self._end_stage()
        self.stages.append({"name": name, "start": time.time(), "end": None})
        self.write_manifest("running")

    def _end_stage(self) -> None:
        if self.stages and self.stages[-1]["end"] is None:
            self.stages[-1]["end"] = time.time()

    def _wait(self, seconds: float, show: Callable[[Run], None] | None) -> bool:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.stop_requested:
                return False
            if show is not None:
                show(self)
            gevent.sleep(min(1.0, max(0.0, deadline - time.time())))
        return not self.stop_requested

    # -- local workers -------------------------------------------------------------------

    def _start_workers(self, runner: Any) -> None:
        port = runner.server.port
        for index in range(1, self.options.workers + 1):
            log = open(self.results_dir / "logs" / f"worker-{index}.log", "ab")  # noqa: SIM115
            self.worker_procs.append(subprocess.Popen(
                [sys.executable, "-m", "harness.cli", "worker", "--master",
                 f"127.0.0.1:{port}", "--index", str(index)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        deadline = time.time() + 60
        while len(runner.clients.ready) < self.options.workers:
            if time.time() > deadline or any(p.poll() is not None for p in self.worker_procs):
                raise TargetUnreachable(f"{len(runner.clients.ready)} of "
                                        f"{self.options.workers} workers connected; logs in "
                                        f"{self.results_dir / 'logs'}")
            gevent.sleep(0.2)

    def _stop_workers(self) -> None:
        for proc in self.worker_procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait(timeout=5)
