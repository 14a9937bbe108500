"""Scenario files: what to run, against what, for how long. Validated with pydantic; every
problem is reported at once with its YAML path (`nova-harness validate FILE`)."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from harness.config.base import Seconds, Strict, parse_duration_s
from harness.config.monitors import (
    MonitorsSpec,
)
from harness.config.profile import Profile, load_profile
from harness.config.redact import SECRET_SETTING
from records.errors import InputError
from records.yamlio import build, read_yaml, yaml_lines

API_OPERATIONS = ("list_active", "get", "create", "delete", "metrics", "health", "get_unknown")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class TargetSpec(Strict):
    """`stack: local` (the default) or the URLs of a deployed target."""

    stack: Literal["local"] | None = "local"
    base_url: str | None = None
    ws_base: str | None = None
    rtmp_url: str | None = None
    hls_base: str | None = None
    allow_remote: bool = False
    # Hosts besides this machine's loopback that load may go to, exactly these (a stack
    # started with `stack up --listen ADDR`, a lab address): an allow-list, not an opt-out.
    allow_hosts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> TargetSpec:
        if self.stack is None and not self.base_url:
            raise ValueError("give either 'stack: local' or 'base_url'")
        if self.stack is not None and self.base_url:
            raise ValueError("'stack: local' and 'base_url' exclude each other")
        for url in (self.base_url, self.ws_base, self.rtmp_url, self.hls_base):
            host = urlparse(url).hostname if url else None
            if host and not self.allowed(host):
                raise ValueError(f"{url} is not on this machine; list its host in "
                                 "'allow_hosts' (or set 'allow_remote: true') to load it "
                                 "deliberately")
        return self

    def allowed(self, host: str) -> bool:
        """Whether load may go to `host`: loopback, an allow-listed host, or any host when
        `allow_remote` is set."""
        return host in LOOPBACK or host in self.allow_hosts or self.allow_remote


class LoginSettings(Strict):
    """The target's login endpoint: a POST of {username_field, password_field} as JSON per
    line of `credentials_file` (`username:password`); the token is read at `token_field`
    (a dotted path) of the JSON answer. `url` is absolute or a path on the API's origin."""

    url: Annotated[str, Field(min_length=1)]
    credentials_file: Annotated[str, Field(min_length=1)]
    username_field: str = "username"
    password_field: str = "password"
    token_field: str = "access_token"


class AuthSpec(Strict):
    """How tokens are obtained: the local stack's keys, an HS256 secret in an environment
    variable, an RS256 private key file, a file of ready tokens (one per line), or the
    target's login endpoint."""

    mode: Literal["local_stack", "secret_env", "key_file", "token_file", "login"] = \
        "local_stack"
    secret_env: str | None = None
    key_file: str | None = None
    token_file: str | None = None
    login: LoginSettings | None = None

    @model_validator(mode="after")
    def _has_source(self) -> AuthSpec:
        needed = {"secret_env": self.secret_env, "key_file": self.key_file,
                  "token_file": self.token_file, "login": self.login}
        if self.mode in needed and not needed[self.mode]:
            raise ValueError(f"mode {self.mode} needs '{self.mode}'")
        return self


class LoadSpec(Strict):
    """Phases: warm-up and cool-down are inside ramp/hold/ramp-down and excluded from
    judgement; `spawn_rate_per_s` defaults to viewers / ramp."""

    ramp: Seconds = 10.0
    hold: Seconds = 60.0
    ramp_down: Seconds = 5.0
    warmup: Seconds = 5.0
    cooldown: Seconds = 5.0
    spawn_rate_per_s: Annotated[float, Field(gt=0, le=2000)] | None = None

    @property
    def total_s(self) -> float:
        return self.ramp + self.hold + self.ramp_down


class ClipSettings(Strict):
    width: Annotated[int, Field(ge=64, le=3840)] = 640
    height: Annotated[int, Field(ge=64, le=2160)] = 360
    fps: Annotated[int, Field(ge=1, le=60)] = 30
    bitrate_kbps: Annotated[int, Field(ge=100, le=20000)] = 800


class StreamsSpec(Strict):
    count: Annotated[int, Field(ge=1, le=200)] = 1
    broadcast: bool = True
    region: Literal["us-west-2", "us-east-1", "eu-central-1", "ap-southeast-1"] = "us-west-2"
    title_prefix: str = "nova-harness"
    clip: ClipSettings = ClipSettings()


class ViewersSpec(Strict):
    per_stream: Annotated[int, Field(ge=0, le=20000)] = 5
    hls_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    info_interval_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    reconnect: bool = True
    ws_client: Literal["fast", "websocket-client"] = "fast"


class ApiClientsSpec(Strict):
    """Open model: arrivals per second, each picking an operation by weight."""

    rate_per_s: Annotated[float, Field(ge=0, le=5000)] = 0.0
    mix: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"list_active": 5.0, "get": 3.0, "metrics": 1.0,
                                 "health": 1.0})

    @model_validator(mode="after")
    def _known_operations(self) -> ApiClientsSpec:
        unknown = sorted(set(self.mix) - set(API_OPERATIONS))
        if unknown:
            raise ValueError(f"unknown operations {unknown} (known: {', '.join(API_OPERATIONS)})")
        if self.rate_per_s > 0 and not any(self.mix.values()):
            raise ValueError("every mix weight is 0")
        return self


class WritesSpec(Strict):
    """Acknowledged-write ledger for fault runs: streams created at `rate_per_s` during the
    run, each checked after it (present, fields unchanged) — the data-loss check."""

    rate_per_s: Annotated[float, Field(ge=0, le=50)] = 0.0


SERVICE_SETTING = re.compile(r"^NOVA_[A-Z0-9_]+$")


class StackSpec(Strict):
    instances: Annotated[int, Field(ge=1, le=8)] = 1
    standby: bool = False
    latency_proxy: list[Literal["postgres", "redis"]] = Field(default_factory=list)
    # The analytics path: Kafka-protocol broker, ClickHouse and the events loader.
    analytics: bool = False
    # NOVA_* settings of the reference service (docs/service.md), as `stack up --service-env`.
    service_env: dict[str, str] = Field(default_factory=dict)

    @field_validator("service_env", mode="before")
    @classmethod
    def _settings(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        bad = [str(key) for key in value if not SERVICE_SETTING.match(str(key))]
        if bad:
            raise ValueError(f"{', '.join(bad)}: not a NOVA_* setting of the reference service")
        # YAML reads 0.25 as a number; the service reads every setting from a string.
        return {key: str(item) if isinstance(item, int | float) and not isinstance(item, bool)
                else item for key, item in value.items()}

    def service_env_problems(self, running: dict[str, str]) -> list[str]:
        """How a stack already running, started with `running`, differs from these settings
        (a reused stack keeps the settings it was started with)."""
        return [f"stack.service_env.{key}: the stack already running has "
                f"{_shown(key, running[key]) if key in running else 'it unset'}, "
                f"not {_shown(key, value)}"
                for key, value in sorted(self.service_env.items()) if running.get(key) != value]


def _shown(key: str, value: str) -> str:
    return "***" if SECRET_SETTING.search(key) else repr(value)


class SoakSpec(Strict):
    """Soak mode (checklist §15): beside the steady load, a repeating cycle connects
    `cycle_viewers` extra viewers (spread over the streams and `cycle_connect`), holds them
    `cycle_hold`, disconnects them all and idles `cycle_idle`; an interim verdict and report
    every `report_every`."""

    cycle_viewers: Annotated[int, Field(ge=0, le=5000)] = 100
    cycle_start: Seconds = 60.0
    cycle_connect: Seconds = 20.0
    cycle_hold: Seconds = 60.0
    cycle_idle: Seconds = 120.0
    report_every: Seconds = 900.0

    @model_validator(mode="after")
    def _sane(self) -> SoakSpec:
        if self.report_every < 30:
            raise ValueError("report_every must be at least 30 s (an interim verdict reads "
                             "the whole folder)")
        return self


class MetricsSpec(Strict):
    """Serve the run's `nova_harness_*` series for Prometheus while it runs
    (docs/monitoring.md). `host` 0.0.0.0 lets a Prometheus on another machine scrape it."""

    port: Annotated[int, Field(ge=1, le=65535)]
    host: str = "127.0.0.1"


class DistributedSpec(Strict):
    """Runs with workers (`--workers`, `--expect-workers`): each worker's clock is measured
    against the master's every `clock_probe_interval_s`; latency measured across clocks is
    INCONCLUSIVE when a worker's offset may exceed `max_clock_offset_ms`."""

    max_clock_offset_ms: Annotated[float, Field(gt=0, le=10000)] = 5.0
    clock_probe_interval_s: Annotated[float, Field(ge=1, le=3600)] = 10.0


class ChaosEntry(Strict):
    """One Chaos Toolkit experiment, started `at` seconds into the run (and again every
    `repeat_every`); `vars` override its configuration (`chaos run --var`)."""

    experiment: str
    at: Seconds
    repeat_every: Seconds | None = None
    vars: dict[str, str | int | float] = Field(default_factory=dict)


class Scenario(Strict):
    name: str
    description: str = ""
    target: TargetSpec = TargetSpec()
    profile: str = "nova-doc"
    auth: AuthSpec = AuthSpec()
    load: LoadSpec = LoadSpec()
    streams: StreamsSpec = StreamsSpec()
    viewers: ViewersSpec = ViewersSpec()
    api_clients: ApiClientsSpec = ApiClientsSpec()
    stack: StackSpec = StackSpec()
    writes: WritesSpec = WritesSpec()
    monitors: MonitorsSpec = Field(default_factory=lambda: MonitorsSpec())
    chaos: list[ChaosEntry] = Field(default_factory=list)
    soak: SoakSpec | None = None
    metrics: MetricsSpec | None = None
    distributed: DistributedSpec = DistributedSpec()
    thresholds: str | None = None

    @property
    def planned_viewers(self) -> int:
        return self.streams.count * self.viewers.per_stream


def _set_path(document: dict[str, Any], dotted: str, value: Any) -> None:
    node = document
    *parents, leaf = dotted.split(".")
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[leaf] = value


def apply_overrides(document: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """CLI options are dotted paths into the document, applied before validation so their
    errors carry the same paths. `duration` (total run length) re-sizes `load.hold`."""
    merged = copy.deepcopy(document)
    duration = overrides.pop("duration", None)
    if "target.base_url" in overrides:
        _set_path(merged, "target.stack", None)
    for dotted, value in overrides.items():
        _set_path(merged, dotted, value)
    if duration is not None:
        load = merged.setdefault("load", {})
        try:
            total_s = parse_duration_s(duration)
            fixed_s = sum(parse_duration_s(load.get(k, d)) for k, d in
                          (("ramp", 10.0), ("ramp_down", 5.0)))
        except ValueError as exc:
            raise InputError([f"--duration {duration}: {exc}"]) from None
        if total_s < fixed_s + 5:
            raise InputError([f"--duration {duration}: shorter than ramp + ramp-down + 5 s "
                              f"({fixed_s + 5:.0f} s)"], hint="shorten load.ramp or lengthen "
                                                             "--duration")
        load["hold"] = total_s - fixed_s
    return merged


def load_scenario(path: Path, overrides: dict[str, Any] | None = None) -> tuple[Scenario,
                                                                               Profile]:
    """Read, override, validate. Raises InputError listing every problem found."""
    document = apply_overrides(read_yaml(path, "scenario"), dict(overrides or {}))
    hint = "see docs/scenarios.md for every field"
    problems: list[str] = []
    scenario: Scenario | None = None
    try:
        scenario = build(Scenario, document, f"scenario {path.name}", hint, yaml_lines(path))
    except InputError as exc:
        problems += exc.problems
    profile: Profile | None = None
    try:
        profile = load_profile(str(document.get("profile", "nova-doc")), base_dir=path.parent)
    except InputError as exc:
        problems += exc.problems
    if scenario is not None:
        problems += _semantic_problems(scenario, path)
    if problems or profile is None or scenario is None:
        raise InputError(problems, hint=hint)
    return scenario, profile


def _semantic_problems(scenario: Scenario, path: Path) -> list[str]:
    where = f"scenario {path.name}"
    problems = []
    load = scenario.load
    if load.warmup > load.ramp + load.hold:
        problems.append(f"{where}: load.warmup: longer than ramp + hold")
    if load.cooldown > load.hold + load.ramp_down:
        problems.append(f"{where}: load.cooldown: longer than hold + ramp_down")
    if scenario.planned_viewers == 0 and scenario.api_clients.rate_per_s == 0:
        problems.append(f"{where}: viewers.per_stream and api_clients.rate_per_s are both 0: "
                        "nothing to run")
    if scenario.target.stack is None and scenario.auth.mode == "local_stack":
        problems.append(f"{where}: auth.mode: local_stack mints tokens with the local stack's "
                        "keys, so it needs target.stack: local; for a deployed target set "
                        "auth.mode to secret_env, key_file, token_file or login "
                        "(docs/scenarios.md, `auth`)")
    problems += _auth_source_problems(scenario.auth, where)
    if scenario.target.stack is None and scenario.stack.service_env:
        problems.append(f"{where}: stack.service_env: sets the reference service, so it needs "
                        "target.stack: local")
    if scenario.thresholds and not (path.parent / scenario.thresholds).exists() \
            and not Path(scenario.thresholds).exists():
        problems.append(f"{where}: thresholds: file {scenario.thresholds} not found")
    for index, entry in enumerate(scenario.chaos):
        if entry.at > load.total_s:
            problems.append(f"{where}: chaos[{index}].at: after the end of the run")
    return problems


def _auth_source_problems(auth: AuthSpec, where: str) -> list[str]:
    """What `run` would find missing when it fetches tokens: caught by `validate` too."""
    if auth.mode == "secret_env" and auth.secret_env and not os.environ.get(auth.secret_env):
        return [f"{where}: auth.secret_env: the environment variable {auth.secret_env} is "
                f"unset or empty (export {auth.secret_env}=… before `run`)"]
    for mode, file in (("key_file", auth.key_file), ("token_file", auth.token_file)):
        if auth.mode == mode and file and not Path(file).is_file():
            return [f"{where}: auth.{mode}: file {file} not found"]
    return []
