"""`nova-harness worker --master HOST:PORT`: one Locust worker process. The master sends the
plan (streams, tokens, endpoints); the worker runs its share of the users and ships every row
to the master's Recorder (harness/load/shipper.py)."""

from __future__ import annotations

import os
import socket
import time

import gevent
from locust.env import Environment

from harness.errors import TargetUnreachable
from harness.load.context import RunPlan, UserContext
from harness.load.shipper import Shipper
from harness.monitor.selfwatch import SelfWatch
from harness.run.engine import user_classes
from harness.run.master import PLAN, answer_clock_probes, report_health
from harness.runtime import allocator
from harness.runtime.gctune import tune_gc
from harness.telemetry.exporter import HarnessMetrics
from harness.telemetry.server import MetricsServer, port_problem
from records.errors import InputError

# Test-only: this worker's clock runs this many milliseconds ahead (docs/distributed.md).
CLOCK_SKEW_ENV = "NOVA_TEST_CLOCK_SKEW_MS"


def worker_main(master: str, index: int | None = None, metrics_port: int | None = None,
                metrics_host: str = "127.0.0.1") -> int:
    """`nova-harness worker --master HOST:PORT`: a Locust worker that ships rows to the master
    (and serves its own series on `metrics_port`, when given). Without `index` the worker is
    numbered by the order the master saw it join."""
    host, _, port = master.rpartition(":")
    problems = [] if host and port.isdigit() else [f"--master {master!r}: expected HOST:PORT"]
    problem = port_problem(metrics_host, metrics_port) if metrics_port is not None else None
    skew_ms = os.environ.get(CLOCK_SKEW_ENV, "0")
    try:
        float(skew_ms)
    except ValueError:
        problems.append(f"{CLOCK_SKEW_ENV}={skew_ms!r}: expected milliseconds")
    if problems or problem:
        raise InputError(problems + ([problem] if problem else []))
    if float(skew_ms):
        _skew_clock(float(skew_ms) / 1000)
    allocator.limit_arenas()
    # The master decides the viewer count; the class shapes must match its.
    env = Environment(user_classes=user_classes(0))
    try:  # Locust retries for 5 minutes until the master answers
        runner = env.create_worker_runner(host.strip("[]"), int(port))
    except ConnectionError:
        raise TargetUnreachable(f"--master {master}: no master answered within 5 minutes",
                                hint="start the run with --expect-workers first, and check "
                                     "that this host reaches the master's --master-bind "
                                     "address") from None
    index = runner.worker_index + 1 if index is None else index
    # A worker's own series are labelled run_id worker-N: the master's are the run's totals.
    metrics = HarnessMetrics(f"worker-{index}", "") if metrics_port is not None else None
    ctx = UserContext(worker=f"worker-{index}", worker_index=index,
                      sink=Shipper(runner, observe=metrics.observe if metrics else None))
    env.nova = ctx  # type: ignore[attr-defined]
    watch = SelfWatch(ctx)
    answer_clock_probes(runner, ctx.worker, socket.gethostname(), os.getpid(), watch.summary)
    runner.register_message(PLAN,
                            lambda msg, **_: ctx.set_plan(RunPlan.from_message(msg.data)))
    shipper = ctx.sink
    assert isinstance(shipper, Shipper)

    def load_stopped(**_: object) -> None:
        gevent.spawn_later(0.2, shipper.ship)
        report_health(runner, watch.summary())
    env.events.test_stop.add_listener(load_stopped)  # type: ignore[no-untyped-call]
    tune_gc()
    watch.start()
    trimmer = allocator.trimmer()
    trimmer.start()
    server = MetricsServer(metrics.registry, metrics_host, metrics_port) \
        if metrics is not None and metrics_port is not None else None
    if server is not None:
        server.start()
    try:
        runner.greenlet.join()
    finally:
        if server is not None:
            server.stop()
        trimmer.stop()
    shipper.ship()
    return 0



def _skew_clock(skew_s: float) -> None:
    """Every wall-clock reading of this process runs `skew_s` ahead, as a host whose clock is
    off would (durations, taken from the monotonic clock, are untouched)."""
    real = time.time
    time.time = lambda: real() + skew_s
