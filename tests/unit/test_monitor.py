"""Resource sampling sums a role's children; the scraper keeps the target's own series."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from harness.config.monitors import ProcessSelector
from harness.monitor.processes import (
    MetricsScraper,
    ProcessSelection,
    ResourceSampler,
    busiest_disk_pct,
    local_stack_roles,
    smaps_totals,
)
from records.schema import Row, table_of
from stack.state import RoleState


class ListSink:
    def __init__(self) -> None:
        self.rows: list[tuple[str, Sequence[Any]]] = []

    def add(self, row: Row) -> None:
        self.rows.append((table_of(row), row))


SHARING = """
import os, time
block = bytearray(80_000_000)  # touched: resident in the parent
for _ in range(3):
    if os.fork() == 0:  # children share the block copy-on-write
        for i in range(0, len(block), 4096):
            _ = block[i]  # read every page: resident in the child too, still shared
        time.sleep(60)
        os._exit(0)
print("ready", flush=True)
time.sleep(60)
"""


def test_pss_counts_shared_pages_once() -> None:
    """Four processes sharing 80 MB: summed RSS ≈ 320 MB, summed PSS ≈ 80 MB."""
    parent = subprocess.Popen([sys.executable, "-c", SHARING], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None and parent.stdout.readline() == b"ready\n"
        def children_resident() -> bool:
            kids = psutil.Process(parent.pid).children()
            return len(kids) == 3 and all(k.memory_info().rss > 75_000_000 for k in kids)
        deadline = time.monotonic() + 20
        while not children_resident():
            assert time.monotonic() < deadline, "children never touched the shared block"
            time.sleep(0.05)
        sink = ListSink()
        sampler = ResourceSampler(sink, lambda: {"postgres": [parent.pid]})
        sampler.sample_once()
        sampler.sample_once()  # within PSS_INTERVAL_S: RSS only
        first, second = [row for table, row in sink.rows if table == "resources"
                         and row[2] == "postgres"]
        rss_bytes, pss_bytes, anon_pss_bytes = first[5], first[11], first[12]
        assert rss_bytes > 300_000_000
        assert 75_000_000 < pss_bytes < 120_000_000
        # The block is private memory shared copy-on-write: anonymous, counted once.
        assert 75_000_000 < anon_pss_bytes <= pss_bytes
        assert second[5] > 300_000_000 and second[11] is None and second[12] is None
    finally:
        for child in psutil.Process(parent.pid).children():
            child.kill()
        parent.kill()
        parent.wait()


SHARED_MEMORY = """
import mmap, time
block = mmap.mmap(-1, 64_000_000)  # shared memory, like PostgreSQL's shared buffers
for i in range(0, len(block), 4096):
    block[i] = 1
print("ready", flush=True)
time.sleep(60)
"""


def test_anonymous_pss_leaves_shared_memory_out() -> None:
    holder = subprocess.Popen([sys.executable, "-c", SHARED_MEMORY], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
        pss_bytes, anon_pss_bytes = smaps_totals(holder.pid)
        assert pss_bytes is not None and anon_pss_bytes is not None
        assert pss_bytes > 64_000_000 and anon_pss_bytes < pss_bytes - 60_000_000
    finally:
        holder.kill()
        holder.wait()
    assert smaps_totals(holder.pid) == (0, 0)  # gone: nothing held


def test_children_are_summed_per_role() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; b = b\"x\" * 60_000_000; "
                              "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while psutil.Process(child.pid).memory_info().rss < 50_000_000:
            assert time.monotonic() < deadline, "child never allocated its memory"
            time.sleep(0.05)
        sink = ListSink()
        sampler = ResourceSampler(sink, lambda: {"api": [os.getpid()]})
        sampler.sample_once()
        sampler.sample_once()
        rows = [row for table, row in sink.rows if table == "resources" and row[2] == "api"]
        own = psutil.Process().memory_info().rss
        assert rows[-1][5] >= own + 50_000_000  # the child's 60 MB are in the role's RSS
        assert rows[-1][3] == os.getpid()
        host = [row for table, row in sink.rows if table == "resources" and row[2] == "system"]
        assert host and host[-1][5] > 0 and 0 < host[-1][6] < 100
    finally:
        child.kill()
        child.wait()


def test_local_stack_roles_group_instances() -> None:
    states = {name: RoleState(name=name, kind=kind, command=[], log="", pid=pid)
              for name, kind, pid in (("api-1", "api", 11), ("api-2", "api", 12),
                                      ("postgres", "postgres", 13), ("nginx", "nginx", None))}
    assert local_stack_roles(states) == {"api": [11, 12], "postgres": [13]}


def test_scraper_keeps_target_series() -> None:
    body = (b"# TYPE nova_streaming_active_streams gauge\n"
            b'nova_streaming_active_streams{region="us-west-2"} 3\n'
            b"# TYPE other_thing gauge\nother_thing 1\n"
            b"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 5e7\n")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = ListSink()
    scraper = MetricsScraper(sink, f"http://127.0.0.1:{server.server_port}/metrics")
    try:
        assert scraper.scrape_once() == 2
    finally:
        server.shutdown()
        server.server_close()
    series = {row[2]: (row[3], row[4]) for _, row in sink.rows}
    assert series == {"nova_streaming_active_streams": ("region=us-west-2", 3.0),
                      "process_resident_memory_bytes": ("", 5e7)}
    assert scraper.scrape_once() == 0 and scraper.failures == 1


def test_selectors_find_roots_by_name_cmdline_and_pid_file(tmp_path: Path) -> None:
    """A process whose parent also matched is left to the sampler's child summing."""
    marker = f"nova-selector-{os.getpid()}"
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys, time; "
                               "subprocess.Popen([sys.executable, '-c', "
                               "'import time; time.sleep(30)', sys.argv[1]]); time.sleep(30)",
                               marker])
    try:
        deadline = time.monotonic() + 10
        while len(psutil.Process(parent.pid).children()) < 1:
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.05)
        (tmp_path / "app.pid").write_text(f"{parent.pid}\n")
        selection = ProcessSelection([
            ProcessSelector(role="by-cmdline", cmdline=marker),
            ProcessSelector(role="by-pid-file", pid_file=str(tmp_path / "app.pid")),
            ProcessSelector(role="by-name", name="no-such-process-name"),
            ProcessSelector(role="missing-pid-file", pid_file=str(tmp_path / "gone.pid"))])
        roles = selection()
        assert roles == {"by-cmdline": [parent.pid], "by-pid-file": [parent.pid],
                         "by-name": [], "missing-pid-file": []}
        assert selection() is roles  # cached between refreshes
    finally:
        for proc in psutil.Process(parent.pid).children():
            proc.kill()
        parent.kill()
        parent.wait()


def _disk(busy_ms: int) -> SimpleNamespace:
    return SimpleNamespace(busy_time=busy_ms)


def test_disk_busy_is_the_busiest_device_not_the_sum() -> None:
    before = {"vda": _disk(1000), "loop0": _disk(0), "zram0": _disk(50)}
    after = {"vda": _disk(1400), "loop0": _disk(300), "zram0": _disk(450)}
    # Over 1 s: vda 40 %, zram0 40 %, loop0 30 %; their sum (110 %) is no device's load.
    assert busiest_disk_pct(before, after, 1.0) == pytest.approx(40.0)


def test_disk_busy_ignores_devices_that_appeared_and_caps_at_100() -> None:
    assert busiest_disk_pct({}, {"vda": _disk(500)}, 1.0) == 0.0
    assert busiest_disk_pct({"vda": _disk(0)}, {"vda": _disk(2500)}, 2.0) == 100.0
