"""Viewer capacity, side by side in one run: a stock Locust user with websocket-client (what a
Locust user writes: default garbage collector, every event reported through Locust's request
event into its stats), the harness's viewer on websocket-client, the harness's lean client
(harness/load/wsfast.py), the lean client without recording, and the lean client recording
with the run's `nova_harness_*` series kept (what `--metrics-port` adds). Each variant is its own
process pinned to core 0; the push server (bench/push_server.py) is pinned to core 1 and sends
every client one event per second.

    .venv/bin/python bench/ws_clients.py --viewers 1000 5000 10000 --seconds 30
    .venv/bin/python bench/ws_clients.py --viewers 10000 --variants lean lean-off --rounds 6
    .venv/bin/python bench/ws_clients.py --viewers 2000 --variants lean-off lean lean-metrics \
        --rounds 4 --seconds 15

Prints: events/s received, CPU % of the generator's core, CPU µs per received event, and the
client-added delay p50/p99 over the measured window: receive time minus the frame's own send
stamp, which the push server takes just before writing each frame (so the delay is the
client's and the loopback's, not the server's queue). `--pace burst` (default) sends in 20
bursts a second, as a service fans an event out to a stream's viewers; `--pace even` spreads
the sends over the second, the worst case for a client that drains ready sockets in batches.
What recording costs moves by several points between two runs on this machine; `--rounds N`
runs the variants N times in turn and prints the median and range of the rounds' own
recorded-over-unrecorded ratios. `--alternate N` measures it more tightly: one lean client
process, recording switched on and off for N pairs of `--seconds` windows (ABBA order), each
recorded window ending when the writer thread has written its rows; it also prints kernel
time, page faults and context switches per event for each window.

    .venv/bin/python bench/ws_clients.py --viewers 10000 --seconds 10 --pace even --alternate 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STOCK = "locust-stock"
# Command-line names of the variants: (client, recording: on, off, or on and the run's
# `nova_harness_*` series kept as `--metrics-port` keeps them).
VARIANT_NAMES = {"stock": (STOCK, "on"), "harness-wsc": ("websocket-client", "on"),
                 "lean": ("fast", "on"), "lean-off": ("fast", "off"),
                 "lean-metrics": ("fast", "metrics")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stock_environment(viewers: int, port: int, window: dict[str, Any]) -> Any:
    """A Locust Environment running the plain websocket-client viewer most Locust users write,
    counting into `window` from Locust's own request event."""
    from datetime import datetime

    import websocket
    from locust import User, constant, task
    from locust.env import Environment

    url = f"ws://127.0.0.1:{port}/api/v1/streams/bench/ws"

    class StockViewer(User):
        wait_time = constant(1)

        @task
        def watch(self) -> None:
            ws = websocket.create_connection(url)
            self.environment.events.request.fire(
                request_type="WS", name="connect", response_time=0, response_length=0,
                exception=None, context={})
            while True:
                text = ws.recv()
                received = time.time()
                frame = json.loads(text)
                sent = datetime.fromisoformat(frame["data"]["timestamp"]).timestamp()
                self.environment.events.request.fire(
                    request_type="WS", name=frame["event"],
                    response_time=(received - sent) * 1000, response_length=len(text),
                    exception=None, context={})

    def on_request(request_type: str, name: str, response_time: float, **_: Any) -> None:
        if name == "connect":
            window["connected"] += 1
        elif window["open"]:
            window["events"] += 1
            window["delays_ms"].append(response_time)

    env = Environment(user_classes=[StockViewer])
    env.events.request.add_listener(on_request)  # type: ignore[no-untyped-call]
    return env


def stock_client(viewers: int, seconds: float, port: int) -> dict[str, Any]:
    """The stock variant, measured like `client`: no GC tuning, no harness code."""
    import gevent
    import psutil

    window: dict[str, Any] = {"connected": 0, "events": 0, "delays_ms": [], "open": False}
    env = stock_environment(viewers, port, window)
    runner = env.create_local_runner()
    runner.start(viewers, spawn_rate=500)
    deadline = time.time() + viewers / 400 + 30
    while window["connected"] < viewers and time.time() < deadline:
        gevent.sleep(0.5)
    gevent.sleep(3)
    proc = psutil.Process()
    window["open"] = True
    cpu_before, started = proc.cpu_times(), time.time()
    gevent.sleep(seconds)
    cpu_after, elapsed = proc.cpu_times(), time.time() - started
    window["open"] = False
    runner.quit()
    return summary(window["connected"], window["events"], window["delays_ms"],
                   (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system),
                   elapsed, proc.memory_info().rss)


def summary(connected: int, events: int, delays_ms: list[float], cpu_s: float,
            elapsed_s: float, rss_bytes: int) -> dict[str, Any]:
    """One variant's row of the table."""
    delays = sorted(delays_ms)
    return {
        "connected": connected, "events_per_s": events / elapsed_s,
        "cpu_pct": 100 * cpu_s / elapsed_s,
        "cpu_us_per_event": 1e6 * cpu_s / max(events, 1),
        "p50_ms": statistics.median(delays) if delays else None,
        "p99_ms": delays[int(0.99 * (len(delays) - 1))] if delays else None,
        "rss_mb": rss_bytes / 2**20,
    }


def client(variant: str, mode: str, viewers: int, seconds: float, port: int,
           alternate_pairs: int = 0) -> dict[str, Any]:
    """Runs inside the pinned client process: one window of `seconds`, or with
    `alternate_pairs` that many pairs of windows with recording switched on and off."""
    os.sched_setaffinity(0, {0})
    record = mode != "off"
    if variant == STOCK:
        return stock_client(viewers, seconds, port)
    from harness.runtime.gctune import tune_gc

    tune_gc()  # as `nova-harness run` does
    import gevent
    import psutil
    from locust.env import Environment

    from harness.config.profile import load_profile
    from harness.load.context import RunPlan, StreamPlan, UserContext
    from harness.run.engine import user_classes
    from harness.telemetry.exporter import HarnessMetrics
    from records.recorder import Recorder
    from records.schema import WS_EVENT, EventRow, Row, SampleRow, table_of

    metrics = HarnessMetrics("bench", "bench") if mode == "metrics" else None

    class CountingSink:
        def __init__(self, recorder: Recorder | None) -> None:
            self.recorder = recorder  # None while recording is off
            self.window = False
            self.events = 0
            self.delays_ms: list[float] = []
            self.connected = 0

        def add(self, row: Row) -> None:
            if self.recorder is not None:
                self.recorder.add(table_of(row), row)
                if metrics is not None:
                    metrics.observe(row)
            if isinstance(row, SampleRow) and row.kind == WS_EVENT and self.window:
                self.events += 1
                self.delays_ms.append(row.latency_ms)
            elif isinstance(row, EventRow) and row.type == "viewer_connected":
                self.connected += 1

    results_dir = Path(tempfile.mkdtemp(prefix="nova-bench-ws-"))
    recorder = Recorder(results_dir) if record or alternate_pairs else None
    sink = CountingSink(recorder)
    ctx = UserContext(worker="bench", sink=sink)
    profile = load_profile("nova-doc")
    ctx.set_plan(RunPlan(
        api_base=f"http://127.0.0.1:{port}", ws_base=f"ws://127.0.0.1:{port}",
        profile=profile.model_dump(by_alias=True),
        streams=(StreamPlan("bench", "k", "http://127.0.0.1:9/x"),), viewer_tokens=("t",),
        api_tokens=("t",), hls_share=0.0, info_interval_s=3600.0, reconnect=False,
        api_rate_per_s=0.0, api_mix={}, region="us-west-2", ws_client=variant))
    env = Environment(user_classes=user_classes(viewers)[:1])
    env.nova = ctx  # type: ignore[attr-defined]
    runner = env.create_local_runner()
    runner.start(viewers, spawn_rate=500)
    deadline = time.time() + viewers / 400 + 30
    while sink.connected < viewers and time.time() < deadline:
        gevent.sleep(0.5)
        if recorder is not None:
            recorder.maybe_flush()
    gevent.sleep(3)

    def window(recording: bool) -> dict[str, Any]:
        """One measured window. A recorded one ends when the writer has written its rows:
        the writer thread's work is the window's."""
        active = sink.recorder = recorder if recording else None
        sink.events, sink.delays_ms, sink.window = 0, [], True
        proc = psutil.Process()
        cpu_before, started = proc.cpu_times(), time.time()
        usage_before = resource.getrusage(resource.RUSAGE_SELF)
        while time.time() < started + seconds:
            gevent.sleep(0.5)
            if active is not None:
                active.maybe_flush()
        if active is not None:
            sink.recorder = None
            active.flush()
            active.wait_for_writes()
        cpu_after, elapsed = proc.cpu_times(), time.time() - started
        usage_after = resource.getrusage(resource.RUSAGE_SELF)
        sink.window = False
        cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        events = max(sink.events, 1)
        return {**summary(sink.connected, sink.events, sink.delays_ms, cpu_s, elapsed,
                          proc.memory_info().rss),
                # Where the time went: kernel time, page faults, context switches per event.
                "sys_us_per_event": 1e6 * (cpu_after.system - cpu_before.system) / events,
                "faults_per_event": (usage_after.ru_minflt - usage_before.ru_minflt) / events,
                "switches_per_event": (usage_after.ru_nvcsw + usage_after.ru_nivcsw
                                       - usage_before.ru_nvcsw - usage_before.ru_nivcsw)
                / events}

    if alternate_pairs:
        # ABBA: recorded first in even pairs, second in odd ones, so a drift of the machine
        # within a pair does not favour either side.
        results: dict[str, Any] = {"pairs": []}
        for pair in range(alternate_pairs):
            first = pair % 2 == 0
            one, two = window(first), window(not first)
            on, off = (one, two) if first else (two, one)
            results["pairs"].append({"on": on, "off": off})
    else:
        results = window(record)
    runner.quit()
    if recorder is not None:
        recorder.close(compact_parts=False)
    shutil.rmtree(results_dir, ignore_errors=True)
    return results


def print_ratios(viewers: int, cost_us: dict[str, float]) -> None:
    """CPU per event of each recorded baseline over the lean recorded client's."""
    lean = cost_us.get("lean")
    for baseline in ("stock", "harness-wsc"):
        if lean and baseline in cost_us:
            print(f"{viewers:>7} {baseline} / lean (both recording): "
                  f"{cost_us[baseline] / lean:.2f}x CPU per event", flush=True)


def print_added_cost(viewers: int, rounds: list[dict[str, float]], more: str, less: str,
                     what: str) -> None:
    """What variant `more` adds over `less` (recording over none; the metrics series over
    recording alone), from each round's two runs (side by side, so a slow minute of the
    machine hits both): the median and the range of the rounds, since one pair on this
    machine moves by several points."""
    pairs = [(r[more], r[less]) for r in rounds if more in r and less in r]
    if not pairs:
        return
    extra_pct = sorted(100 * (on / off - 1) for on, off in pairs)
    extra_us = [on - off for on, off in pairs]
    print(f"{viewers:>7} {what} costs {statistics.median(extra_pct):+.1f} % "
          f"({statistics.median(extra_us):+.1f} µs per event), median of {len(extra_pct)} "
          f"rounds; range {extra_pct[0]:+.1f} to {extra_pct[-1]:+.1f} %", flush=True)


def run_variant(variant: str, mode: str, viewers: int, port: int,
                seconds: float) -> dict[str, Any] | None:
    """One variant in its own pinned process; None (and the cause printed) if it failed."""
    out = subprocess.run(
        [sys.executable, __file__, "--seconds", str(seconds), "--client",
         variant, mode, str(viewers), str(port)],
        capture_output=True, text=True, cwd=ROOT, check=False)
    try:
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        print(f"{viewers:>7} {variant:<17} failed: {out.stderr[-300:]}")
        return None
    print(f"{viewers:>7} {variant:<17} {mode:<4} "
          f"{result['connected']:>6} {result['events_per_s']:>7.0f} {result['cpu_pct']:>6.1f} "
          f"{result['cpu_us_per_event']:>6.1f} {result['p50_ms'] or 0:>6.2f} "
          f"{result['p99_ms'] or 0:>6.2f} {result['rss_mb']:>6.0f}", flush=True)
    return result


def run_alternating(viewers: int, port: int, seconds: float, pairs: int) -> None:
    """The lean client in one pinned process, recording switched on and off in turn: each
    pair's two windows share the process, its sockets and the same minute of the machine."""
    out = subprocess.run(
        [sys.executable, __file__, "--seconds", str(seconds), "--alternate", str(pairs),
         "--client", "fast", "on", str(viewers), str(port)],
        capture_output=True, text=True, cwd=ROOT, check=False)
    try:
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        print(f"{viewers:>7} alternating windows failed: {out.stderr[-300:]}")
        return
    extra_pct, extra_us = [], []
    for number, pair in enumerate(result["pairs"], 1):
        on, off = pair["on"], pair["off"]
        extra_pct.append(100 * (on["cpu_us_per_event"] / off["cpu_us_per_event"] - 1))
        extra_us.append(on["cpu_us_per_event"] - off["cpu_us_per_event"])
        print(f"{viewers:>7} pair {number:>2}: " + ", ".join(
            f"{side} {pair[side]['cpu_us_per_event']:.1f} µs/ev "
            f"(sys {pair[side]['sys_us_per_event']:.1f}, p99 {pair[side]['p99_ms'] or 0:.2f} ms, "
            f"faults {pair[side]['faults_per_event']:.3f}, "
            f"switches {pair[side]['switches_per_event']:.3f})" for side in ("on", "off"))
            + f": {extra_pct[-1]:+.1f} %", flush=True)
    ordered = sorted(extra_pct)
    p99 = {side: statistics.median(p[side]["p99_ms"] or 0 for p in result["pairs"])
           for side in ("on", "off")}
    print(f"{viewers:>7} recording costs {statistics.median(extra_pct):+.1f} % "
          f"({statistics.median(extra_us):+.1f} µs per event), median of {len(ordered)} "
          f"pairs; range {ordered[0]:+.1f} to {ordered[-1]:+.1f} %; p99 median "
          f"{p99['on']:.2f} ms recorded, {p99['off']:.2f} ms not", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--viewers", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--pace", choices=("burst", "even"), default="burst",
                        help="the push server's sends: 20 bursts a second, or spread evenly")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANT_NAMES),
                        default=list(VARIANT_NAMES),
                        help="which clients to run, in this order (default: all five)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the variants this many times in turn; with lean and "
                             "lean-off, prints recording's cost as the rounds' median")
    parser.add_argument("--alternate", type=int, default=0, metavar="PAIRS",
                        help="instead of the variants: the lean client in one process, "
                             "recording on and off in turn for PAIRS pairs of --seconds "
                             "windows; prints recording's cost as the pairs' median")
    parser.add_argument("--client", nargs=4, metavar=("VARIANT", "MODE", "VIEWERS", "PORT"))
    args = parser.parse_args()
    if args.client:
        variant, mode, viewers, port = args.client
        print(json.dumps(client(variant, mode, int(viewers), args.seconds, int(port),
                                args.alternate)))
        return
    if args.rounds < 1 or args.alternate < 0:
        parser.error("--rounds must be at least 1 and --alternate at least 0")
    if not args.alternate:
        print(f"{'viewers':>7} {'client':<17} {'rec':<4} {'conn':>6} {'ev/s':>7} {'cpu%':>6} "
              f"{'µs/ev':>6} {'p50ms':>6} {'p99ms':>6} {'rssMB':>6}", flush=True)
    for viewers in args.viewers:
        port = free_port()
        server = subprocess.Popen(["taskset", "-c", "1", sys.executable,
                                   str(ROOT / "bench/push_server.py"), str(port),
                                   "--pace", args.pace])
        time.sleep(1.5)
        rounds: list[dict[str, float]] = []
        try:
            if args.alternate:
                run_alternating(viewers, port, args.seconds, args.alternate)
                continue
            for _ in range(args.rounds):
                cost_us: dict[str, float] = {}
                for name in args.variants:
                    result = run_variant(*VARIANT_NAMES[name], viewers, port, args.seconds)
                    if result is not None:
                        cost_us[name] = result["cpu_us_per_event"]
                    time.sleep(2)
                print_ratios(viewers, cost_us)
                rounds.append(cost_us)
            print_added_cost(viewers, rounds, "lean", "lean-off", "recording")
            print_added_cost(viewers, rounds, "lean-metrics", "lean", "the metrics series")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
