"""`nova-harness worker --master HOST:PORT`: one Locust worker process. The master sends the
plan (streams, tokens, endpoints); the worker runs its share of the users and ships every row
to the master's Recorder (harness/load/shipper.py)."""

from __future__ import annotations

import gevent
from locust.env import Environment

from harness.load.context import RunPlan, UserContext
from harness.load.shipper import Shipper
from harness.monitor.selfwatch import SelfWatch
from harness.run.engine import user_classes
from harness.runtime import allocator
from harness.runtime.gctune import tune_gc
from harness.telemetry.exporter import HarnessMetrics
from harness.telemetry.server import MetricsServer, port_problem
from records.errors import InputError


def worker_main(master: str, index: int, metrics_port: int | None = None,
                metrics_host: str = "127.0.0.1") -> int:
    """`nova-harness worker --master HOST:PORT`: a Locust worker that ships rows to the master
    (and serves its own series on `metrics_port`, when given)."""
    host, _, port = master.rpartition(":")
    problems = [] if host and port.isdigit() else [f"--master {master!r}: expected HOST:PORT"]
    problem = port_problem(metrics_host, metrics_port) if metrics_port is not None else None
    if problems or problem:
        raise InputError(problems + ([problem] if problem else []))
    allocator.limit_arenas()
    # The master decides the viewer count; the class shapes must match its.
    env = Environment(user_classes=user_classes(0))
    runner = env.create_worker_runner(host, int(port))
    # A worker's own series are labelled run_id worker-N: the master's are the run's totals.
    metrics = HarnessMetrics(f"worker-{index}", "") if metrics_port is not None else None
    ctx = UserContext(worker=f"worker-{index}", worker_index=index,
                      sink=Shipper(runner, observe=metrics.observe if metrics else None))
    env.nova = ctx  # type: ignore[attr-defined]
    runner.register_message("nova_plan",
                            lambda msg, **_: ctx.set_plan(RunPlan.from_message(msg.data)))
    shipper = ctx.sink
    assert isinstance(shipper, Shipper)
    env.events.test_stop.add_listener(  # type: ignore[no-untyped-call]
        lambda **_: gevent.spawn_later(0.2, shipper.ship))
    tune_gc()
    watch = SelfWatch(ctx)
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

