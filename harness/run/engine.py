"""`nova-harness run`: validate → (local stack) → streams → viewers and API clients through
Locust → publishers → phases → stop → results folder. Ctrl-C stops the load and publishers,
flushes results and marks the run `aborted`."""

from __future__ import annotations

import datetime as dt
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
from locust.env import Environment

from harness.auth.keys import token_file_problems
from harness.auth.login import read_credentials
from harness.chaos.acked_writes import WriteLedger
from harness.chaos.schedule import ChaosRunner, Occurrence, check_experiments, describe, plan
from harness.config.scenario import load_scenario
from harness.errors import SourceError, TargetUnreachable
from harness.load.api_client import ApiArrivalsUser
from harness.load.broadcasters import Fleet, encoded_clip
from harness.load.context import RunPlan, UserContext
from harness.load.shipper import MESSAGE
from harness.load.viewer import ViewerUser
from harness.monitor.analytics import analytics_addresses, record_snapshot
from harness.monitor.api_audit import StreamAudit
from harness.monitor.selfwatch import SelfWatch
from harness.run import documents
from harness.run.livestats import LiveStats
from harness.run.master import Roster, bind_problems, bind_taken, merged_validity, split_bind
from harness.run.monitors import build_monitors, clickhouse_reader
from harness.run.services import RecorderClock, Services
from harness.run.target import PRIVATE_ENDPOINTS, RunTarget
from harness.run.workers import LocalWorkers
from harness.runtime import allocator, memtrace
from harness.runtime.gctune import tune_gc
from harness.runtime.periodic import Every
from harness.soak.cycles import CycleDriver, InterimReporter
from harness.soak.resume import Resume, segment_phases
from harness.telemetry.exporter import HarnessMetrics, RunFacts
from harness.telemetry.server import MetricsServer, port_problem
from records.errors import InputError
from records.provenance import source_commit
from records.recorder import Recorder, atomic_write_json
from stack import local


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
    master_bind: str = "127.0.0.1:0"  # where workers connect (port 0: a free one)
    expect_workers: int = 0  # workers started elsewhere that the run waits for
    join_timeout_s: float = 120.0
    # A line the user needs while the run starts (the address workers join).
    announce: Callable[[str], None] = lambda line: None

    @property
    def worker_count(self) -> int:
        """Every worker process the run waits for: local and remote."""
        return self.workers + self.expect_workers


@dataclass
class RunOutcome:
    results_dir: Path
    status: str
    manifest: dict[str, Any]


STATUS_INTERVAL_S = 5.0
COMPACT_INTERVAL_S = 600.0  # result parts merged every 10 minutes


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
        problems, hint = self._worker_problems(), None
        try:
            self.trace_memory_s = memtrace.interval_from_env()
        except InputError as exc:
            problems += exc.problems
            hint = exc.hint
        metrics = self.scenario.metrics
        problem = port_problem(metrics.host, metrics.port) if metrics is not None else None
        if problem:
            problems.append(problem)
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
        self.target = RunTarget(self.scenario, self.profile, options.stack_dir,
                                options.resume.manifest if options.resume else None)
        self.services = Services()
        self.metrics = HarnessMetrics(self.run_id, self.scenario.name, self.results_dir,
                                      self._facts) if self.scenario.metrics else None
        self.stop_requested = False
        self.stop_reason = "completed"
        self.status = "crashed"  # until the load ends otherwise
        self.final_manifest: dict[str, Any] = {}
        self.harness_commit = source_commit()  # once: the manifest is rewritten often
        self.stages: list[dict[str, Any]] = []
        self.endpoints_public: dict[str, str] = {}
        self.ids_by_key: dict[str, str] = {}  # filled as streams are created (nginx /stat)
        self.started_at: float | None = None
        self.fleet: Fleet | None = None
        self.chaos: ChaosRunner | None = None
        self.ledger: WriteLedger | None = None
        self.cycles: CycleDriver | None = None
        self.roster: Roster | None = None
        self.master_address: str | None = None
        self.interim: InterimReporter | None = None
        self.faults_planned = self._plan_chaos()

    def _worker_problems(self) -> list[str]:
        o, problems = self.options, []
        if o.workers < 0 or o.workers > 32:
            problems.append(f"--workers {o.workers}: must be between 0 and 32")
        if o.expect_workers < 0 or o.expect_workers > 1000:
            problems.append(f"--expect-workers {o.expect_workers}: must be between 0 and 1000")
        if o.join_timeout_s <= 0:
            problems.append(f"--join-timeout {o.join_timeout_s:g}: must be more than 0 s")
        if o.master_bind != RunOptions.master_bind and not o.worker_count:
            problems.append("--master-bind: needs --workers or --expect-workers (a run "
                            "without workers has no master)")
        bind = bind_problems(o.master_bind)
        return problems + (bind or bind_taken(*split_bind(o.master_bind)))

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
                                      analytics=s.stack.analytics,
                                      local_target=local_target)
        if problems:
            raise InputError(problems, hint="see docs/chaos.md")
        return plan(s.chaos, self.options.scenario_path.parent, s.load.total_s)

    def chaos_plan(self) -> list[str]:
        """What the run will break, one line per planned experiment start."""
        return [f"at {o.at_s:.0f}s: {describe(o.path, o.variables)}"
                for o in self.faults_planned]

    @property
    def api_clocks(self) -> int:
        """API arrival clocks: one per worker process, each with its share of the rate."""
        return max(1, self.options.worker_count)

    def all_stages(self) -> list[dict[str, Any]]:
        """This run's stages, after those of the run it resumes."""
        return [*(self.options.resume.stages if self.options.resume else []), *self.stages]

    def phases(self) -> list[dict[str, Any]]:
        load = self.scenario.load
        return segment_phases(self.all_stages(), load.warmup, load.cooldown)

    def write_manifest(self, status: str, **extra: Any) -> dict[str, Any]:
        document = documents.manifest(self, status, **extra)
        atomic_write_json(self.results_dir / "manifest.json", document)
        return document

    def write_status(self, status: str) -> None:
        atomic_write_json(self.results_dir / "status.json", documents.status(self, status))

    # -- the run -------------------------------------------------------------------------

    def execute(self, show: Callable[[Run], None] | None = None) -> RunOutcome:
        """The whole run: the metrics endpoint (when asked for), the target, then every part
        started in order and stopped in reverse (also on Ctrl-C or an error): the load first,
        then the watchers, then the results (the manifest's last word), then the target."""
        self.started_at = time.time()
        allocator.limit_arenas()  # before any thread (a login's DNS, the writer) makes an arena
        try:
            self._serve_metrics()
            endpoints = self.target.connect()
            self.services.adopt("target", self.target.stop)
            self._open_results(endpoints)
            self._install_signals()
            self._start_watchers(endpoints)
            self.status = self._drive(endpoints, show)
        finally:
            self.services.stop_all()
        return RunOutcome(self.results_dir, self.status, self.final_manifest)

    def _open_results(self, endpoints: dict[str, str]) -> None:
        self.results_dir.mkdir(parents=True, exist_ok=True)
        (self.results_dir / "logs").mkdir(exist_ok=True)
        self.recorder = Recorder(self.results_dir)
        self.live = LiveStats(self.recorder, [self.metrics.observe] if self.metrics else [])
        self.ctx = UserContext(worker="master" if self.options.worker_count else "local",
                               sink=self.live)
        self.watch = SelfWatch(self.ctx)
        self.endpoints_public = {k: v for k, v in endpoints.items()
                                 if not k.endswith(PRIVATE_ENDPOINTS)}
        self.write_manifest("running")
        # Stopped after everything that writes rows, before the target.
        self.services.adopt("results", self._finish)
        if self.options.resume is not None:
            gap = self.options.resume.gaps[-1]
            self.ctx.event("run_resumed", value=gap["end"] - gap["start"])
        tune_gc()

    def _start_watchers(self, endpoints: dict[str, str]) -> None:
        """The parts that watch the whole run: the Recorder's clock, the generator's own
        health and memory, the status file and the target's monitors."""
        start = self.services.start
        start("recorder clock", RecorderClock(self.recorder, COMPACT_INTERVAL_S))
        start("self-watch", self.watch)
        start("memory trimmer", allocator.trimmer())
        if self.trace_memory_s:
            start("memory trace", memtrace.MemoryTrace(
                self.results_dir / "logs" / "memory-trace.log", self.trace_memory_s))
        start("status", Every(STATUS_INTERVAL_S, lambda: self.write_status("running")))
        for name, monitor in build_monitors(self.scenario, self.profile, self.ctx.sink,
                                            endpoints, self.options.stack_dir,
                                            self.ids_by_key):
            start(f"monitor {name}", monitor)

    def _serve_metrics(self) -> None:
        """The metrics endpoint, first of all: its port is taken before the local stack
        chooses free ports for its own parts."""
        spec = self.scenario.metrics
        if self.metrics is not None and spec is not None:
            self.services.start("metrics endpoint",
                                MetricsServer(self.metrics.registry, spec.host, spec.port))

    def _facts(self) -> RunFacts:
        """What the metrics endpoint reads from the run when Prometheus scrapes."""
        s, fleet = self.scenario, self.fleet
        if not hasattr(self, "recorder"):  # scraped before the results folder is open
            return RunFacts(time_left_s=s.load.total_s)
        started = self.stages[0]["start"] if self.stages else time.time()
        return RunFacts(
            stage=self.stages[-1]["name"] if self.stages else "starting",
            time_left_s=max(0.0, s.load.total_s - (time.time() - started)),
            planned_viewers={b.plan.id: s.viewers.per_stream for b in fleet.broadcasts}
            if fleet else {},
            broadcasters=dict(Counter(fleet.states())) if fleet else {},
            rows_by_table=dict(self.recorder.rows_seen),
            write_errors=len(self.recorder.write_errors),
            saturated_s=float(self.watch.saturated_seconds))

    def _finish(self) -> None:
        """Close the results: the last rows written and compacted, the final manifest (with
        any part that failed to stop) and status."""
        self.recorder.close()
        self.final_manifest = self.write_manifest(
            self.status, ended_at=time.time(), stop_reason=self.stop_reason,
            streams=[b.plan.id for b in self.fleet.broadcasts] if self.fleet else [],
            broadcasters=self.fleet.states() if self.fleet else [],
            validity=merged_validity([self.watch.summary(),
                                      *(self.roster.validities() if self.roster else [])]),
            rows=self.recorder.rows_seen,
            write_errors=self.recorder.write_errors + self.services.stop_errors,
            viewers_connected=len(self.live.ever_connected))
        self.write_status(self.status)

    def _install_signals(self) -> None:
        def request_stop() -> None:
            self.stop_requested = True
            self.stop_reason = "interrupted"
        gevent.signal_handler(signal.SIGINT, request_stop)
        gevent.signal_handler(signal.SIGTERM, request_stop)

    def _environment(self) -> Environment:
        classes = user_classes(self.scenario.planned_viewers, self.api_clocks)
        if self.scenario.api_clients.rate_per_s <= 0:
            classes = classes[:1]
        env = Environment(user_classes=classes)
        env.nova = self.ctx  # type: ignore[attr-defined]
        if self.options.worker_count:
            host, port = split_bind(self.options.master_bind)
            env.create_master_runner(host, port)
            assert env.runner is not None
            env.runner.register_message(MESSAGE, lambda msg, **_: self._receive(msg.data))
            self.master_address = f"{host}:{env.runner.server.port}"  # type: ignore[attr-defined]
        else:
            env.create_local_runner()
        if self.options.web_port:
            env.create_web_ui("127.0.0.1", self.options.web_port)
        return env

    def _receive(self, data: dict[str, list[list[Any]]]) -> None:
        for table, rows in data.items():
            self.live.add_many(table, rows)  # the Recorder makes the lists tuples

    def _plan(self, endpoints: dict[str, str], streams: list[Any],
              api_tokens: tuple[str, ...]) -> RunPlan:
        s = self.scenario
        return RunPlan(
            api_base=endpoints["api_base"], ws_base=endpoints["ws_base"],
            profile=self.profile.model_dump(by_alias=True), streams=tuple(streams),
            viewer_tokens=self.target.tokens(s.planned_viewers, endpoints["api_base"]),
            api_tokens=api_tokens,
            hls_share=s.viewers.hls_share, info_interval_s=s.viewers.info_interval_s,
            reconnect=s.viewers.reconnect,
            api_rate_per_s=s.api_clients.rate_per_s, api_clocks=self.api_clocks,
            api_mix=dict(s.api_clients.mix), region=s.streams.region,
            ws_client=s.viewers.ws_client)

    def _drive(self, endpoints: dict[str, str], show: Callable[[Run], None] | None) -> str:
        s, services = self.scenario, self.services
        api_tokens = self.target.tokens(10, endpoints["api_base"])
        fleet = self.fleet = Fleet(self.ctx, self.profile, endpoints["api_base"],
                                   endpoints["rtmp_url"], endpoints["hls_base"], api_tokens[0],
                                   self.results_dir)
        services.adopt("broadcasters", fleet.stop_all)
        runner = self._environment().runner
        assert runner is not None
        if self.options.worker_count:  # before any stream exists: a no-show creates nothing
            self._gather_workers(runner)
        streams = fleet.create_streams(s.streams.count, s.streams.title_prefix, s.streams.region)
        self.ids_by_key.update({stream.key: stream.id for stream in streams})
        plan = self._plan(endpoints, streams, api_tokens)
        self.ctx.set_plan(plan)
        if self.roster is not None:
            self.roster.send_plan(plan.to_message())
        clip = encoded_clip(s.streams.clip) if s.streams.broadcast else None
        users = s.planned_viewers + (self.api_clocks if s.api_clients.rate_per_s > 0 else 0)
        spawn_rate = s.load.spawn_rate_per_s or max(1.0, users / max(s.load.ramp, 1.0))
        # Built before the load: its client's TLS context takes ~30 ms of the loop.
        audit = StreamAudit(self.ctx, self.profile, endpoints["api_base"], api_tokens[1],
                            [stream.id for stream in streams])
        services.adopt("stream audit", audit.close)
        self._stage("ramp")
        runner.start(users, spawn_rate=spawn_rate)
        self._start_faults(endpoints, api_tokens[-1])
        if not self._wait(s.load.ramp, show):
            return self._abort(runner)
        if clip is not None:
            fleet.publish_all(clip)
            fleet.watch()
        audit.start()
        self._stage("hold")
        self._start_soak(plan)
        if not self._wait(max(0.0, s.load.hold - (time.time() - self.stages[-1]["start"])),
                          show):
            return self._abort(runner)
        self._stage("ramp_down")
        self._load_ending()
        self._stop_soak()
        self._stop_faults()
        fleet.stop_all()  # viewers get stream_ended and close
        ramp_down_end = time.time() + s.load.ramp_down
        audit.read_back()
        if self.ledger is not None:
            self.ledger.verify()
        self._wait(max(0.0, ramp_down_end - time.time()), show)
        runner.stop()
        self._end_stage()
        gevent.sleep(1.0)  # let workers ship their last rows
        runner.quit()
        self._read_analytics(endpoints, show)
        return "completed"

    def _gather_workers(self, runner: Any) -> None:
        """Local workers started, then every worker waited for (each answers a clock round
        first)."""
        o = self.options
        self.roster = Roster(runner, self.ctx, self.scenario.distributed.clock_probe_interval_s)
        self.services.start("worker roster", self.roster)
        assert self.master_address is not None
        host, port = self.master_address.rsplit(":", 1)
        local_workers = LocalWorkers(f"{'127.0.0.1' if host == '0.0.0.0' else host}:{port}",
                                     o.workers, self.results_dir / "logs")
        self.services.start("local workers", local_workers)
        if o.expect_workers:
            join = self.master_address if host != "0.0.0.0" else \
                f"{socket.gethostname()}:{port} (listening on every address of this machine)"
            o.announce(f"master: waiting up to {o.join_timeout_s:.0f} s for "
                       f"{o.expect_workers} workers: nova-harness worker --master {join}")
        self.write_manifest("running")
        try:
            self.roster.wait_for(o.worker_count, o.join_timeout_s, tuple(local_workers.procs))
        except TargetUnreachable:
            runner.quit()  # tells the workers that did join to leave
            raise
        self.write_manifest("running")

    def _load_ending(self) -> None:
        """From here on, workers leaving is the run ending, not a loss."""
        if self.roster is not None:
            self.roster.load_ended()

    def _read_analytics(self, endpoints: dict[str, str],
                        show: Callable[[Run], None] | None) -> None:
        """After the settle time, the run's events as ClickHouse holds them (§14)."""
        spec = self.scenario.monitors.analytics
        url = analytics_addresses(spec, endpoints)[0]
        if not url or not self.ids_by_key:
            return
        last_event_ts = time.time()
        self._stage("settle")
        self._wait(spec.settle_s, show)
        self._end_stage()
        reader = clickhouse_reader(self.scenario, self.profile, url)
        try:
            record_snapshot(self.ctx.sink, reader, list(self.ids_by_key.values()),
                            spec.settle_s, last_event_ts)
        except SourceError as exc:
            self.ctx.event("analytics_snapshot_failed", detail=str(exc)[:300])
        finally:
            reader.close()

    def _start_soak(self, plan: RunPlan) -> None:
        spec = self.scenario.soak
        if spec is None:
            return
        first = self.options.resume.cycles_done + 1 if self.options.resume else 1
        self.cycles = CycleDriver(self.ctx, spec, plan.ws_client, first_number=first)
        self.services.start("soak cycles", self.cycles)
        self.interim = InterimReporter(self.ctx, self.results_dir, spec.report_every)
        self.services.start("interim reports", self.interim)

    def _stop_soak(self) -> None:
        for part in (self.cycles, self.interim):
            if part is not None:
                part.stop()

    def _start_faults(self, endpoints: dict[str, str], token: str) -> None:
        s = self.scenario
        if s.writes.rate_per_s > 0:
            self.ledger = WriteLedger(self.ctx, self.profile, endpoints["api_base"], token,
                                      s.writes.rate_per_s, s.streams.region, self.run_id)
            self.services.start("write ledger", self.ledger)
        if self.faults_planned:
            env = {"NOVA_STACK_DIR": str(self.options.stack_dir),
                   "NOVA_RESULTS_DIR": str(self.results_dir.resolve())}
            self.chaos = ChaosRunner(self.faults_planned, self.results_dir, env, self.ctx,
                                     on_record=lambda: self.write_manifest("running"))
            self.chaos.start(self.stages[0]["start"])
            self.services.adopt("chaos schedule", self.chaos.stop)

    def _stop_faults(self) -> None:
        """No new faults; a running experiment is interrupted and its rollbacks awaited."""
        if self.chaos is not None:
            self.chaos.stop()
        if self.ledger is not None:
            self.ledger.stop()

    def _abort(self, runner: Any) -> str:
        self._load_ending()
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
