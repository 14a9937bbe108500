"""How each part of the local stack is started: commands, environment, readiness checks."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from stack.address import listen_host
from stack.analytics.broker import broker_binary
from stack.errors import StackStartError

TEMPLATES = Path(__file__).resolve().parent / "templates"
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
# The alert rules the optional Prometheus role loads (kept with the deploy examples).
ALERT_RULES = Path(__file__).resolve().parents[1] / "deploy/prometheus/nova-streaming-alerts.yml"
PROMETHEUS_SCRAPE_S = 2
DATABASE = "nova_streaming"


@dataclass(frozen=True)
class StackOptions:
    """What `stack up` was asked for. Ports of 0 are chosen free at start."""

    run_dir: Path
    instances: int = 1
    standby: bool = False
    restart: str = "always"
    jwt_algorithm: str = "HS256"
    api_port: int = 0
    http_port: int = 0
    rtmp_port: int = 0
    postgres_port: int = 0
    redis_port: int = 0
    service_env: dict[str, str] = field(default_factory=dict)
    # Roles whose traffic from the service goes through a latency-injecting proxy
    # (stack.netproxy), for network faults where the kernel has no netem.
    latency_proxy: tuple[str, ...] = ()
    # A Prometheus scraping the service instances, with the checklist's alert rules loaded.
    prometheus: bool = False
    # The analytics path: a Kafka-protocol broker, ClickHouse and the events loader.
    analytics: bool = False
    # The address every listener uses (`stack up --listen ADDR`; stack.address).
    listen: str = "127.0.0.1"


PROXIABLE_ROLES = ("postgres", "redis")


def pg_bindir() -> Path:
    """PostgreSQL server binaries (Debian keeps them out of PATH)."""
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             check=True).stdout.strip()
        if (Path(out) / "postgres").exists():
            return Path(out)
    except (OSError, subprocess.CalledProcessError):
        pass
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "postgres").exists():
            return candidate
    raise StackStartError("postgres: server binaries not found (install the Debian package "
                          "'postgresql', e.g. with `make setup`)")


def program(name: str) -> str:
    """A program's path; /usr/sbin counts too (non-root PATHs on Debian lack it)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    return found or name


def require_binaries(prometheus: bool = False, analytics: bool = False) -> None:
    """Fail with one line per missing program before anything starts."""
    wanted = ("nginx", "redis-server", "ffmpeg", *(("prometheus",) if prometheus else ()),
              *(("clickhouse-server",) if analytics else ()))
    missing = [name for name in wanted if not Path(program(name)).is_absolute()]
    problems = [f"{name} is not installed" for name in missing]
    if analytics:
        try:
            broker_binary()
        except StackStartError as exc:
            problems.append(str(exc).split(" — ")[0])
    if not RTMP_MODULE.exists():
        problems.append(f"the nginx RTMP module is missing ({RTMP_MODULE}; Debian package "
                        "libnginx-mod-rtmp)")
    if problems:
        raise StackStartError("; ".join(problems) + " — run `make setup`")
    pg_bindir()


_LOW_PORT = 20000
_given_ports: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free port *below* the kernel's ephemeral range. A port from bind(0) lies inside it,
    so between choosing it and the server binding it an outgoing connection (pg_basebackup,
    a readiness probe, the service connecting to PostgreSQL) could take it as its local port
    and the server would fail with 'address in use'."""
    top = _ephemeral_start()
    for _ in range(200):
        port = random.randrange(_LOW_PORT, top)
        if port not in _given_ports and port_is_free(port):
            _given_ports.add(port)
            return port
    with socket.socket() as sock:  # nothing free below the range: fall back to the kernel's
        sock.bind((listen_host(), 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((listen_host(), port))
        except OSError:
            return False
        return True


def port_accepts(port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((listen_host(), port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def redis_pings(port: int) -> bool:
    try:
        with socket.create_connection((listen_host(), port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def pg_ready(port: int) -> bool:
    result = subprocess.run(
        [str(pg_bindir() / "pg_isready"), "-q", "-h", listen_host(), "-p", str(port),
         "-U", "postgres", "-d", "postgres"],
        check=False,
    )
    return result.returncode == 0


def pg_in_recovery(port: int) -> bool | None:
    """True on a standby, False on a writable primary, None when it does not answer."""
    try:
        result = subprocess.run(
            [str(pg_bindir() / "psql"), "-h", listen_host(), "-p", str(port), "-U", "postgres",
             "-d", "postgres", "-tAc", "SELECT pg_is_in_recovery()"],
            capture_output=True, text=True, check=False, timeout=5,
            env={**os.environ, "PGCONNECT_TIMEOUT": "3"})
    except subprocess.TimeoutExpired:
        return None  # a paused server accepts the connection and never answers
    answer = result.stdout.strip()
    return None if result.returncode != 0 or answer not in ("t", "f") else answer == "t"


def wait_until(check: object, timeout_s: float, what: str, log: Path,
               alive: object = None) -> None:
    """Poll `check()` until true; raise the one-line start error naming the part and its log."""
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if callable(alive):
            code = alive()
            if code is not None:
                raise StackStartError(f"{what} exited with code {code} while starting"
                                      f"{_last_words(log)}; log: {log}")
        time.sleep(0.05)
    raise StackStartError(f"{what} was not ready after {timeout_s:.0f}s; log: {log}")


def _last_words(log: Path) -> str:
    """The log's last line, so the one-line error says why (it is gone with a test's folder)."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f" ({lines[-1][-200:]})" if lines else ""


def render_nginx(run_dir: Path, http_port: int, rtmp_port: int, api_ports: list[int]) -> Path:
    template = string.Template((TEMPLATES / "nginx.conf").read_text())
    upstream = "\n".join(f"        server {listen_host()}:{p} max_fails=0;" for p in api_ports)
    conf = template.substitute(
        rtmp_module=RTMP_MODULE, run_dir=run_dir, log_dir=run_dir / "logs", host=listen_host(),
        http_port=http_port, rtmp_port=rtmp_port, upstream_servers=upstream,
    )
    path = run_dir / "nginx" / "nginx.conf"
    path.write_text(conf)
    return path


def render_prometheus(run_dir: Path, api_ports: list[int]) -> Path:
    """The Prometheus role's configuration: every service instance (job `nova`), the alert
    rules from deploy/prometheus when this checkout has them."""
    folder = run_dir / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    interval = f"{PROMETHEUS_SCRAPE_S}s"
    config = {"global": {"scrape_interval": interval, "evaluation_interval": interval},
              "rule_files": [str(ALERT_RULES)] if ALERT_RULES.exists() else [],
              "scrape_configs": [{"job_name": "nova", "static_configs": [
                  {"targets": [f"{listen_host()}:{port}" for port in api_ports]}]}]}
    path = folder / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def prometheus_scraped(port: int) -> bool:
    """Ready, and every target it was given scraped once (until then it answers no data)."""
    if http_status(f"http://{listen_host()}:{port}/-/ready") != 200:
        return False
    try:
        with urllib.request.urlopen(f"http://{listen_host()}:{port}/api/v1/targets",
                                    timeout=2.0) as answer:
            targets = json.loads(answer.read())["data"]["activeTargets"]
    except (OSError, ValueError, KeyError):
        return False
    return bool(targets) and all(t.get("health") != "unknown" for t in targets)


def prometheus_command(conf: Path, run_dir: Path, port: int) -> list[str]:
    return [program("prometheus"), f"--config.file={conf}",
            f"--storage.tsdb.path={run_dir / 'prometheus' / 'data'}",
            f"--web.listen-address={listen_host()}:{port}", "--log.level=warn"]


def nginx_command(conf: Path, run_dir: Path) -> list[str]:
    return [program("nginx"), "-p", str(run_dir / "nginx"), "-c", str(conf),
            "-e", str(run_dir / "logs" / "nginx-error.log")]


def postgres_command(data_dir: Path, port: int, socket_dir: Path, standby: bool) -> list[str]:
    command = [
        str(pg_bindir() / "postgres"), "-D", str(data_dir), "-p", str(port),
        "-c", f"listen_addresses={listen_host()}", "-c", f"unix_socket_directories={socket_dir}",
        "-c", "max_connections=200", "-c", "shared_buffers=64MB",
        "-c", "logging_collector=off", "-c", "log_min_messages=warning",
        # The faults this stack takes are process kills, which never lose what PostgreSQL
        # wrote to the OS; an fsync per commit only made commits (and the RTMP publish
        # webhook, which nginx gives up on after 10 s) wait behind other disk traffic.
        "-c", "fsync=off",
    ]
    if standby:
        # Retry WAL fetches quickly so a promotion is writable in well under a second.
        command += ["-c", "hot_standby=on", "-c", "wal_retrieve_retry_interval=100ms"]
    return command


def redis_command(port: int, data_dir: Path) -> list[str]:
    return [program("redis-server"), "--bind", listen_host(), "--port", str(port), "--save", "",
            "--appendonly", "no", "--dir", str(data_dir), "--protected-mode", "no",
            "--daemonize", "no", "--maxclients", "10000"]


def proxy_command(listen_port: int, upstream_port: int, settings: Path) -> list[str]:
    return [sys.executable, "-m", "stack.netproxy", "--listen", str(listen_port),
            "--upstream", str(upstream_port), "--settings", str(settings)]


def service_command() -> list[str]:
    return [sys.executable, "-m", "stack.service"]


def loader_command() -> list[str]:
    return [sys.executable, "-m", "stack.analytics.loader"]
