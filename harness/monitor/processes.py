"""Watching the target while it is under load: every role's processes (children summed per
role: PostgreSQL backends, nginx workers) and the host, sampled with psutil into `resources`,
and the target's own `/metrics` scraped into `metrics` — on the same clock as the load."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gevent
import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from harness.config.monitors import ProcessSelector
from harness.runtime.periodic import Every
from records.schema import MetricRow, ResourceRow, Row, RowSink

TREE_REFRESH_S = 5.0
# PSS walks every mapped page (/proc/PID/smaps_rollup): ~0.35 ms per PostgreSQL backend here,
# against ~0.03 ms for RSS. Every 5 s keeps a 25-process stack's cost near 0.2 % of a core;
# trends and cycles bucket over ≥ 10 s anyway.
PSS_INTERVAL_S = 5.0
ROLE_OF_KIND = {"api": "api", "postgres": "postgres", "postgres-standby": "postgres-standby",
                "redis": "redis", "nginx": "nginx"}


def local_stack_roles(state_roles: Mapping[str, Any]) -> dict[str, list[int]]:
    """Role → root pids, from the local stack's state file roles (api-1, api-2 → api)."""
    roles: dict[str, list[int]] = {}
    for role in state_roles.values():
        kind = role.kind if hasattr(role, "kind") else role["kind"]
        pid = role.pid if hasattr(role, "pid") else role["pid"]
        if pid:
            roles.setdefault(ROLE_OF_KIND.get(kind, kind), []).append(int(pid))
    return roles


class ProcessSelection:
    """Role → root pids of processes picked by selectors (name, command-line pattern, pid
    file), re-resolved every TREE_REFRESH_S so a restarted process is followed. A match whose
    ancestor also matched is dropped: the sampler sums children into their root already."""

    def __init__(self, selectors: Sequence[ProcessSelector]) -> None:
        self.selectors = list(selectors)
        self._patterns = {id(s): re.compile(s.cmdline) for s in self.selectors if s.cmdline}
        self._roles: dict[str, list[int]] = {}
        self._at = float("-inf")

    def __call__(self) -> dict[str, list[int]]:
        now = time.monotonic()
        if now - self._at >= TREE_REFRESH_S:
            self._roles, self._at = self.resolve(), now
        return self._roles

    def resolve(self) -> dict[str, list[int]]:
        table = {p.pid: p.info for p in psutil.process_iter(["name", "cmdline", "ppid"])}
        roles: dict[str, list[int]] = {}
        for selector in self.selectors:
            matched = {pid for pid, info in table.items() if self._matches(selector, pid, info)}
            roots = [pid for pid in sorted(matched) if not _has_ancestor(pid, matched, table)]
            roles.setdefault(selector.role, []).extend(roots)
        return roles

    def _matches(self, selector: ProcessSelector, pid: int, info: dict[str, Any]) -> bool:
        if selector.name:
            return bool(info.get("name") == selector.name)
        if selector.cmdline:
            return bool(self._patterns[id(selector)].search(" ".join(info.get("cmdline") or [])))
        return pid == _read_pid(selector.pid_file or "")


def _read_text(path: str) -> str:
    # Not pathlib: a Path interns every component of its path (CPython 3.11), so reading
    # /proc/PID/... for a dozen processes a second adds interned strings all the time; that
    # churn resizes the interpreter's table of them, and at minute ~35 of a soak one resize
    # doubled it, +1.9 MB for good (traced to pathlib's sys.intern; docs/performance.md).
    with open(path, encoding="utf-8") as file:
        return file.read()


def _read_pid(path: str) -> int | None:
    try:
        return int(_read_text(path).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _has_ancestor(pid: int, matched: set[int], table: Mapping[int, dict[str, Any]]) -> bool:
    parent, seen = table.get(pid, {}).get("ppid"), {pid}
    while parent and parent not in seen:
        if parent in matched:
            return True
        seen.add(parent)
        parent = table.get(parent, {}).get("ppid")
    return False


class ResourceSampler:
    """Samples each role (root pids and all their children) and the host every interval."""

    def __init__(self, sink: RowSink, roles: Callable[[], dict[str, list[int]]],
                 interval_s: float = 1.0, pss_interval_s: float | None = PSS_INTERVAL_S) -> None:
        self.sink, self.roles, self.interval_s = sink, roles, interval_s
        self.pss_interval_s = pss_interval_s  # None: no PSS (a benchmark's comparison)
        self.host = socket.gethostname()
        self.cpus = os.cpu_count() or 1
        self._procs: dict[int, psutil.Process] = {}
        self._trees: dict[int, list[int]] = {}
        self._trees_at = 0.0
        self._memory_total = psutil.virtual_memory().total
        self.every = Every(interval_s, self._tick)
        self._last_disks: Mapping[str, Any] = {}
        self._last_net: Any = None
        self._last_t = 0.0
        self._pss_at = float("-inf")

    def start(self) -> None:
        psutil.cpu_percent()
        self.every.start()

    def stop(self) -> None:
        self.every.stop()

    def _process(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        if proc is None:
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent()  # primes the counter; the first real value comes next tick
            except psutil.Error:
                return None
            self._procs[pid] = proc
        return proc

    def _tree(self, root_pid: int) -> list[psutil.Process]:
        pids = self._trees.get(root_pid, [root_pid])
        return [p for p in (self._process(pid) for pid in pids) if p is not None]

    def _refresh_trees(self, roots: list[int], now: float) -> None:
        """Children change slowly (new backends, restarted workers): one scan of the process
        table every TREE_REFRESH_S serves every role, instead of a scan per root each second."""
        if now - self._trees_at < TREE_REFRESH_S and set(roots) <= set(self._trees):
            return
        children: dict[int, list[int]] = {}
        for proc in psutil.process_iter(["ppid"]):
            children.setdefault(proc.info["ppid"], []).append(proc.pid)
        trees = {}
        for root in roots:
            tree, todo = [root], [root]
            while todo:
                kids = children.get(todo.pop(), [])
                tree += kids
                todo += kids
            trees[root] = tree
        self._trees, self._trees_at = trees, now

    def _tick(self) -> None:
        # Reading /proc for a stack's ~30 processes takes ~10 ms, ~40 ms with PSS (measured
        # during a soak, 2026-11-29): on the gevent loop that is as long a stall for every
        # viewer. A real thread spends it in syscalls, mostly without the GIL.
        rows = gevent.get_hub().threadpool.apply(self.collect)
        self._write(rows)

    def sample_once(self, now: float | None = None) -> None:
        """One sample of every role and the host, written to the sink (`now` lets a benchmark
        simulate seconds)."""
        self._write(self.collect(now))

    def _write(self, rows: list[Row]) -> None:
        for row in rows:
            self.sink.add(row)

    def collect(self, now: float | None = None) -> list[Row]:
        """One sample of every role and the host; touches nothing but this sampler, so it
        may run in a thread."""
        now = time.time() if now is None else now
        roles = self.roles()
        self._refresh_trees([pid for pids in roles.values() for pid in pids], now)
        with_pss = self.pss_interval_s is not None and now - self._pss_at >= self.pss_interval_s
        if with_pss:
            self._pss_at = now
        rows: list[Row] = [self._sample_tree(now, role, root_pid, with_pss)
                           for role, pids in roles.items() for root_pid in pids]
        rows += self._sample_host(now)
        alive = {p for p, proc in self._procs.items() if proc.is_running()}
        self._procs = {p: proc for p, proc in self._procs.items() if p in alive}
        return rows

    def _sample_tree(self, now: float, role: str, root_pid: int,
                     with_pss: bool) -> ResourceRow:
        cpu = rss = reads = writes = fds = 0.0
        mem = 0.0
        pss: int | None = 0 if with_pss else None
        anon: int | None = 0 if with_pss else None
        for proc in self._tree(root_pid):
            with contextlib.suppress(psutil.Error), proc.oneshot():
                cpu += proc.cpu_percent()
                info = proc.memory_info()
                rss += info.rss
                mem += 100 * info.rss / self._memory_total
                io = proc.io_counters()
                reads, writes = reads + io.read_bytes, writes + io.write_bytes
                fds += proc.num_fds()
                if with_pss:
                    proc_pss, proc_anon = smaps_totals(proc.pid)
                    pss = _plus(pss, proc_pss)
                    anon = _plus(anon, proc_anon)
        return ResourceRow(now, self.host, role, root_pid, cpu, int(rss), mem, int(reads),
                           int(writes), int(fds), 0, pss, anon)

    def _sample_host(self, now: float) -> list[Row]:
        memory = psutil.virtual_memory()
        disk, net = psutil.disk_io_counters(), psutil.net_io_counters()
        disks = psutil.disk_io_counters(perdisk=True) or {}
        busy_pct = 0.0
        if self._last_disks and now > self._last_t:
            busy_pct = busiest_disk_pct(self._last_disks, disks, now - self._last_t)
        rows: list[Row] = [ResourceRow(
            now, self.host, "system", None, psutil.cpu_percent() * self.cpus,
            int(memory.total - memory.available), memory.percent,
            int(disk.read_bytes if disk else 0), int(disk.write_bytes if disk else 0), 0, 0,
            None, None)]
        rows.append(MetricRow(now, "host", "host_disk_busy_pct", "", busy_pct))
        if self._last_net is not None and now > self._last_t:
            for name in ("bytes_sent", "bytes_recv"):
                rate = (getattr(net, name) - getattr(self._last_net, name)) / (now - self._last_t)
                rows.append(MetricRow(now, "host", f"host_net_{name}_per_s", "", rate))
        self._last_disks, self._last_net, self._last_t = disks, net, now
        return rows


def busiest_disk_pct(before: Mapping[str, Any], after: Mapping[str, Any],
                     elapsed_s: float) -> float:
    """The busiest device's share of `elapsed_s` spent doing I/O (iostat's %util). The
    machine-wide counters add every device's busy time (disks, loop devices, zram), which
    reads 100 % when several are each partly busy."""
    busiest_ms = max((getattr(after[name], "busy_time", 0) - getattr(before[name], "busy_time", 0)
                      for name in after if name in before), default=0)
    return min(100.0, max(0.0, 100 * busiest_ms / 1000 / elapsed_s))


# Linux ≥ 4.14; elsewhere PSS is not recorded at all.
HAS_SMAPS_ROLLUP = Path("/proc/self/smaps_rollup").exists()


def smaps_totals(pid: int) -> tuple[int | None, int | None]:
    """(PSS, anonymous PSS) of a process in bytes, from one read of /proc/PID/smaps_rollup;
    None for what the kernel does not say (no smaps_rollup, or a kernel without Pss_Anon), or
    when it may not be read. A process that is gone counts as 0: its memory is gone too."""
    if not HAS_SMAPS_ROLLUP:
        return None, None
    try:
        text = _read_text(f"/proc/{pid}/smaps_rollup")
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    except OSError:
        return None, None
    fields: dict[str, int] = {}
    for line in text.splitlines()[1:]:  # the first line names the address range
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0]) * 1024
    return fields.get("Pss"), fields.get("Pss_Anon")


def _plus(total: int | None, value: int | None) -> int | None:
    """A sum that becomes None once any part is unknown: a partial sum would look like a
    drop."""
    return None if total is None or value is None else total + value


class PolledSource:
    """Calls `poll()` every interval in a greenlet; a failing poll is recorded as a metrics
    row (the target may be down: that is data, not a crash) and counted in `failures`."""

    name = "source"

    def __init__(self, sink: RowSink, interval_s: float = 5.0) -> None:
        self.sink, self.interval_s = sink, interval_s
        self.failures = 0
        self.every = Every(interval_s, self.poll_once, first_after_s=0.0)

    def start(self) -> None:
        self.every.start()

    def stop(self) -> None:
        self.every.stop()

    def poll_once(self) -> list[tuple[str, str, float]]:
        now = time.time()
        try:
            rows = self.poll()
        except Exception as exc:
            self.failures += 1
            self.sink.add(MetricRow(now, self.name, *self.failure(exc), 1.0))
            return []
        for series, labels, value in rows:
            self.sink.add(MetricRow(now, self.name, series, labels, value))
        return rows

    def failure(self, exc: Exception) -> tuple[str, str]:
        """(series, labels) of the row that records a failed poll."""
        return f"{self.name}_poll_failed", f"error={type(exc).__name__}"

    def poll(self) -> list[tuple[str, str, float]]:
        raise NotImplementedError


class MetricsScraper(PolledSource):
    """Scrapes the target's Prometheus text endpoint into `metrics` every interval."""

    name = "target"
    PREFIXES = ("nova_streaming_", "nova_analytics_", "process_")

    def __init__(self, sink: RowSink, url: str, interval_s: float = 5.0) -> None:
        super().__init__(sink, interval_s)
        self.url = url
        self.client = httpx.Client(timeout=5.0)

    def stop(self) -> None:
        super().stop()
        self.client.close()

    def failure(self, exc: Exception) -> tuple[str, str]:
        return "scrape_failed", ""

    def poll(self) -> list[tuple[str, str, float]]:
        text = self.client.get(self.url).text
        return [(sample.name, ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items())),
                 float(sample.value))
                for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.name.startswith(self.PREFIXES)]

    def scrape_once(self) -> int:
        """One scrape; how many series rows it wrote."""
        return len(self.poll_once())
