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
from records.errors import InputError


def worker_main(master: str, index: int) -> int:
    """`nova-harness worker --master HOST:PORT`: a Locust worker that ships rows to the master."""
    host, _, port = master.rpartition(":")
    if not host or not port.isdigit():
        raise InputError([f"--master {master!r}: expected HOST:PORT"])
    allocator.limit_arenas()
    # The master decides the viewer count; the class shapes must match its.
    env = Environment(user_classes=user_classes(0))
    runner = env.create_worker_runner(host, int(port))
    ctx = UserContext(worker=f"worker-{index}", sink=Shipper(runner), worker_index=index)
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
    runner.greenlet.join()
    trimmer.stop()
    shipper.ship()
    return 0

