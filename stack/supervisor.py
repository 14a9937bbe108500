"""The stack supervisor: a detached process that starts every part in order, waits until each is
healthy, restarts service instances that die (restart: always), answers start/stop requests on a
control socket, and stops everything it started when told to."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import shutil
import signal
import socketserver
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from stack import roles
from stack.address import LOOPBACK, listen_host, use_listen_host
from stack.analytics import broker, clickhouse
from stack.errors import StackError, StackStartError
from stack.jwtkeys import service_jwt_env
from stack.roles import StackOptions
from stack.state import RoleState, StackState, write_state

log = logging.getLogger("nova.supervisor")

_STOP_SIGNALS = {"postgres": signal.SIGINT,
                 "postgres-standby": signal.SIGINT}
_RESTART_BACKOFF_S = 1.0


class Supervisor:
    """Owns every process of one local stack."""

    def __init__(self, options: StackOptions) -> None:
        use_listen_host(options.listen)
        self.options = options
        self.run_dir = options.run_dir
        self.logs = self.run_dir / "logs"
        self.state = StackState(run_dir=str(self.run_dir), supervisor_pid=os.getpid(),
                                started_at=time.time(),
                                control_socket=str(self.run_dir / "control.sock"),
                                listen=options.listen)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._last_restart: dict[str, float] = {}
        self._env: dict[str, dict[str, str]] = {}
        self._pg_user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        # ClickHouse refuses to run as root; Debian's package makes this user.
        self._ch_user = pwd.getpwnam("clickhouse") if os.geteuid() == 0 and \
            options.analytics else None

    # -- main loop -----------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self._stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self._stopping.set())
        try:
            self._plan()
            self._start_all()
        except StackError as exc:
            log.error("start failed: %s", exc)
            self.state.error = str(exc)
            self._stop_all()
            self.state.status = "failed"
            self._save()
            return 1
        self.state.status, self.state.ready_at = "ready", time.time()
        self._save()
        server = self._serve_control()
        try:
            while not self._stopping.wait(0.2):
                self._watch()
        finally:
            server.shutdown()
            self.state.status = "stopping"
            self._save()
            self._stop_all()
            self.state.status = "stopped"
            self._save()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.run_dir / "control.sock")
        return 0

    def _save(self) -> None:
        with self._lock:
            write_state(self.state)

    # -- planning ------------------------------------------------------------------------

    def _port(self, fixed: int) -> int:
        return fixed or roles.free_port()

    def _plan(self) -> None:
        """Choose ports, render configs and fill the state with every role, not yet started."""
        o, run = self.options, self.run_dir
        pg_port, redis_port = self._port(o.postgres_port), self._port(o.redis_port)
        http_port, rtmp_port = self._port(o.http_port), self._port(o.rtmp_port)
        api_ports = [o.api_port + i if o.api_port else roles.free_port()
                     for i in range(o.instances)]
        for path in ("logs", "hls", "redis", "nginx", "pg-socket"):
            (run / path).mkdir(parents=True, exist_ok=True)
        # nginx workers drop to an unprivileged user when started as root: HLS must be theirs too.
        os.chmod(run / "hls", 0o777)
        add = self._add_role
        add("postgres", "postgres", roles.postgres_command(run / "postgres", pg_port,
                                                            run / "pg-socket", standby=False),
            port=pg_port, data_dir=run / "postgres")
        hosts = []
        if o.standby:
            standby_port = roles.free_port()
            add("postgres-standby", "postgres-standby",
                roles.postgres_command(run / "postgres-standby", standby_port, run / "pg-socket",
                                       standby=True),
                port=standby_port, data_dir=run / "postgres-standby")
            hosts.append(f"{listen_host()}:{standby_port}")
        add("redis", "redis", roles.redis_command(redis_port, run / "redis"), port=redis_port,
            data_dir=run / "redis")
        analytics_env = self._plan_analytics() if o.analytics else {}
        service_ports = {"postgres": pg_port, "redis": redis_port}
        for upstream in o.latency_proxy:
            service_ports[upstream] = self._add_proxy(upstream, service_ports[upstream])
        suffix = "?target_session_attrs=read-write" if o.standby else ""
        # The harness's own PostgreSQL/Redis sources connect directly, not through a proxy.
        direct_hosts = ",".join([f"{listen_host()}:{pg_port}", *hosts])
        direct_database_url = f"postgresql://postgres@{direct_hosts}/{roles.DATABASE}{suffix}"
        hosts.insert(0, f"{listen_host()}:{service_ports['postgres']}")
        database_url = f"postgresql://postgres@{','.join(hosts)}/{roles.DATABASE}" + suffix
        redis_url = f"redis://{listen_host()}:{service_ports['redis']}/0"
        service_env = {
            "NOVA_DATABASE_URL": database_url,
            "NOVA_REDIS_URL": redis_url,
            "NOVA_RTMP_URL": f"rtmp://{listen_host()}:{rtmp_port}/live",
            "NOVA_HLS_BASE": f"http://{listen_host()}:{http_port}",
            # One loopback address carries the whole load: keep the limiter out of its way.
            "NOVA_RATE_LIMIT_IP": "1000000",
            "NOVA_RATE_LIMIT_USER": "1000000",
            **service_jwt_env(run, o.jwt_algorithm),
            **{k: v for k, v in analytics_env.items() if k == "NOVA_KAFKA_BOOTSTRAP"},
            **o.service_env,
        }
        for index, port in enumerate(api_ports, start=1):
            name = f"api-{index}"
            add(name, "api", roles.service_command(), port=port, restart=o.restart)
            self._env[name] = {**service_env, "NOVA_HOST": listen_host(), "NOVA_PORT": str(port),
                               "NOVA_INSTANCE_ID": name}
        conf = roles.render_nginx(run, http_port, rtmp_port, api_ports)
        add("nginx", "nginx", roles.nginx_command(conf, run), port=http_port,
            extra_ports={"rtmp": rtmp_port}, data_dir=run / "hls")
        if o.prometheus:
            prometheus_port = roles.free_port()
            add("prometheus", "prometheus",
                roles.prometheus_command(roles.render_prometheus(run, api_ports), run,
                                         prometheus_port),
                port=prometheus_port, data_dir=run / "prometheus")
        api_base = (f"http://{listen_host()}:{api_ports[0]}" if o.instances == 1
                    else f"http://{listen_host()}:{http_port}")
        self.state.endpoints = {
            "api_base": api_base,
            "ws_base": api_base.replace("http://", "ws://"),
            "rtmp_url": f"rtmp://{listen_host()}:{rtmp_port}/live",
            "hls_base": f"http://{listen_host()}:{http_port}",
            "metrics_url": f"{api_base}/metrics",
            "stat_url": f"http://{listen_host()}:{http_port}/stat",
            "database_url": database_url,
            "redis_url": redis_url,
            "monitor_database_url": direct_database_url,
            "monitor_redis_url": f"redis://{listen_host()}:{redis_port}/0",
        }
        if o.analytics:
            self.state.endpoints.update({
                "kafka_bootstrap": analytics_env["NOVA_KAFKA_BOOTSTRAP"],
                "clickhouse_url": analytics_env["NOVA_CLICKHOUSE_URL"],
                "loader_metrics_url":
                    f"http://{listen_host()}:{self.state.roles['events-loader'].port}/metrics"})
        if o.prometheus:
            self.state.endpoints["prometheus_url"] = \
                f"http://{listen_host()}:{self.state.roles['prometheus'].port}"
        self._check_ports()
        self._save()

    def _plan_analytics(self) -> dict[str, str]:
        """The broker, ClickHouse and the loader; returns the loader's settings (the service
        takes the broker's address from them)."""
        kafka_port, ch_port, ch_tcp = roles.free_port(), roles.free_port(), roles.free_port()
        loader_port = roles.free_port()
        folder = self.run_dir / "clickhouse"
        self._add_role("kafka", "kafka", broker.broker_command(kafka_port), port=kafka_port)
        config = clickhouse.render_config(folder, ch_port, ch_tcp)
        if self._ch_user is not None:
            for path in (folder, *folder.rglob("*")):
                os.chown(path, self._ch_user.pw_uid, self._ch_user.pw_gid)
        self._add_role("clickhouse", "clickhouse", clickhouse.server_command(config),
                       port=ch_port, extra_ports={"native": ch_tcp}, data_dir=folder)
        env = {"NOVA_KAFKA_BOOTSTRAP": f"{listen_host()}:{kafka_port}",
               "NOVA_CLICKHOUSE_URL": f"http://{listen_host()}:{ch_port}",
               "NOVA_LOADER_PORT": str(loader_port),
               **{k: v for k, v in self.options.service_env.items()
                  if k.startswith("NOVA_LOADER_")}}
        self._add_role("events-loader", "loader", roles.loader_command(), port=loader_port)
        self._env["events-loader"] = env
        return env

    def _add_proxy(self, upstream: str, upstream_port: int) -> int:
        port = roles.free_port()
        (self.run_dir / "netem").mkdir(exist_ok=True)
        settings = self.run_dir / "netem" / f"{upstream}.json"
        settings.write_text("{}")
        self._add_role(f"{upstream}-proxy", "proxy",
                       roles.proxy_command(port, upstream_port, settings), port=port,
                       data_dir=settings.parent)
        return port

    def _add_role(self, name: str, kind: str, command: list[str], *, port: int,
                  data_dir: Path | None = None, restart: str = "never",
                  extra_ports: dict[str, int] | None = None) -> None:
        self.state.roles[name] = RoleState(
            name=name, kind=kind, command=command, log=str(self.logs / f"{name}.log"),
            port=port, extra_ports=extra_ports or {},
            data_dir=str(data_dir) if data_dir else None, restart=restart)

    def _check_ports(self) -> None:
        for role in self.state.roles.values():
            for port in [role.port, *role.extra_ports.values()]:
                if port is not None and not roles.port_is_free(port):
                    raise StackStartError(f"{role.name}: port {port} on {listen_host()} is "
                                          f"already in use; log: {role.log}")

    # -- starting ------------------------------------------------------------------------

    def _start_all(self) -> None:
        primary_dir = Path(self.state.roles["postgres"].data_dir or "")
        self._reclaim_primary_folder(primary_dir, self.run_dir / "postgres-standby")
        self._init_postgres(primary_dir)
        for name in self.state.roles:
            self.start_role(name)

    def _reclaim_primary_folder(self, primary_dir: Path, standby_dir: Path) -> None:
        """A failover scenario leaves the `postgres` folder as a standby of the promoted
        former standby (its rollback reseeds it so). Started so, the primary would be read-only
        and the service would never get ready. The promoted copy holds the newest data: it
        becomes the primary's folder. Without one, the folder is started as a primary. Any
        standby folder is rebuilt from the primary when a standby is next asked for (its
        recorded primary and port are this folder's history, not this stack's)."""
        if (primary_dir / "standby.signal").exists():
            promoted = (standby_dir / "PG_VERSION").exists() and \
                not (standby_dir / "standby.signal").exists()
            if promoted:
                shutil.rmtree(primary_dir)
                os.rename(standby_dir, primary_dir)
                log.warning("postgres: its folder was a standby of the promoted former standby "
                            "(a failover scenario ran here); the promoted copy is the primary "
                            "now")
            else:
                (primary_dir / "standby.signal").unlink()
                log.warning("postgres: its folder was a standby with no promoted primary "
                            "beside it; started as the primary")
        shutil.rmtree(standby_dir, ignore_errors=True)

    def _as_postgres(self) -> dict[str, Any]:
        return self._as(self._pg_user)

    @staticmethod
    def _as(user: pwd.struct_passwd | None) -> dict[str, Any]:
        if user is None:
            return {}
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _chown_postgres(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self._pg_user is not None:
            os.chown(path, self._pg_user.pw_uid, self._pg_user.pw_gid)
        os.chmod(path, 0o700)

    def _run_logged(self, name: str, command: list[str], **kwargs: Any) -> None:
        log_path = self.logs / f"{name}.log"
        with open(log_path, "ab") as out:
            try:
                result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                                        check=False, timeout=60, **kwargs)
            except subprocess.TimeoutExpired:
                raise StackStartError(f"{name}: `{' '.join(command[:2])}` did not finish in "
                                      f"60s; log: {log_path}") from None
        if result.returncode != 0:
            raise StackStartError(f"{name}: `{' '.join(command[:2])}` failed with code "
                                  f"{result.returncode}; log: {log_path}")

    def _init_postgres(self, data_dir: Path) -> None:
        socket_dir = self.run_dir / "pg-socket"
        self._chown_postgres(socket_dir)
        os.chmod(socket_dir, 0o755)
        if (data_dir / "PG_VERSION").exists():
            return
        self._chown_postgres(data_dir)
        self._run_logged("postgres", [str(roles.pg_bindir() / "initdb"), "-D", str(data_dir),
                                      "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                      "--locale=C", "--no-sync"], **self._as_postgres())
        if listen_host() != LOOPBACK:
            # The harness's monitors connect from other hosts of the listen address's subnet.
            with open(data_dir / "pg_hba.conf", "a") as hba:
                hba.write("host all all samenet trust\n")

    def start_role(self, name: str) -> RoleState:
        """Start one role and wait until it is healthy (also used by the control socket)."""
        with self._lock:
            role = self.state.roles[name]
            if role.state == "running" and self._alive(name):
                return role
            if role.kind == "postgres-standby":
                self._prepare_standby(role)
            self._spawn(role)
        self._wait_ready(role)
        if role.kind == "postgres":
            self._ensure_database(role)
        self._save()
        return role

    def _spawn(self, role: RoleState) -> None:
        postgres = role.kind.startswith("postgres")
        env = {**os.environ, **self._env.get(role.name, {})}
        with open(role.log, "ab") as out:
            proc = subprocess.Popen(
                role.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=str(self.run_dir),
                # nginx gets its own process group: its workers must die with it.
                start_new_session=role.kind == "nginx",
                **(self._as_postgres() if postgres else
                   self._as(self._ch_user) if role.kind == "clickhouse" else {}),
            )
        self._procs[role.name] = proc
        role.pid, role.state, role.exit_code = proc.pid, "running", None
        role.pgid = os.getpgid(proc.pid)
        with contextlib.suppress(psutil.Error):
            role.create_time = psutil.Process(proc.pid).create_time()
        log.info("started %s pid %s", role.name, proc.pid)

    def _alive(self, name: str) -> bool:
        """The role's process runs. A killed multi-threaded process (Redis: 33 of 60 kills)
        shows as a zombie while its other threads still exit, and waitpid cannot reap it yet:
        that counts as dead, and it is reaped here so a restart never races the old process."""
        proc = self._procs.get(name)
        if proc is None or proc.poll() is not None:
            return False
        try:
            dying = psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE
        except psutil.Error:
            dying = True
        if not dying:
            return True
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        return False

    def _wait_ready(self, role: RoleState) -> None:
        port, host = role.port or 0, listen_host()
        checks = {
            "postgres": (lambda: roles.pg_ready(port), 30.0),
            "postgres-standby": (lambda: roles.pg_ready(port), 30.0),
            "redis": (lambda: roles.redis_pings(port), 10.0),
            "proxy": (lambda: roles.port_accepts(port), 10.0),
            "api": (lambda: roles.http_status(f"http://{host}:{port}/health") == 200, 30.0),
            "nginx": (lambda: roles.port_accepts(role.extra_ports["rtmp"]) and
                      roles.http_status(f"http://{host}:{port}/stat") == 200, 10.0),
            "prometheus": (lambda: roles.prometheus_scraped(port), 30.0),
            "kafka": (lambda: roles.port_accepts(port), 10.0),
            "clickhouse": (lambda: clickhouse.pings(f"http://{listen_host()}:{port}"), 30.0),
            "loader": (lambda: roles.http_status(f"http://{listen_host()}:{port}/health") == 200,
                       30.0),
        }
        check, timeout_s = checks[role.kind]
        proc = self._procs[role.name]
        roles.wait_until(check, timeout_s, role.name, Path(role.log), alive=proc.poll)

    def _ensure_database(self, role: RoleState) -> None:
        bindir = roles.pg_bindir()
        probe = subprocess.run(
            [str(bindir / "psql"), "-h", listen_host(), "-p", str(role.port), "-U", "postgres",
             "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{roles.DATABASE}'"],
            capture_output=True, text=True, check=False)
        if probe.stdout.strip() != "1":
            self._run_logged(role.name, [str(bindir / "createdb"), "-h", listen_host(), "-p",
                                         str(role.port), "-U", "postgres", roles.DATABASE])

    def _prepare_standby(self, role: RoleState) -> None:
        data_dir = Path(role.data_dir or "")
        if (data_dir / "PG_VERSION").exists():
            return
        primary = self.state.roles["postgres"]
        self._chown_postgres(data_dir)
        self._run_logged(role.name, [
            str(roles.pg_bindir() / "pg_basebackup"), "-h", listen_host(), "-p", str(primary.port),
            "-U", "postgres", "-D", str(data_dir), "-R", "-X", "stream", "--no-sync",
            "--checkpoint=fast",
        ], **self._as_postgres())

    # -- PostgreSQL failover ----------------------------------------------------------------

    def _postgres_role(self, name: str) -> RoleState:
        role = self.state.roles[name]
        if not role.kind.startswith("postgres"):
            raise ValueError(f"{name} is not a PostgreSQL role")
        return role

    def promote(self, name: str) -> RoleState:
        """Make a running standby the writable primary; returns once it accepts writes."""
        role = self._postgres_role(name)
        if roles.pg_in_recovery(role.port or 0) is not True:
            raise StackStartError(f"{name} is not a running standby")
        self._run_logged(name, [str(roles.pg_bindir() / "pg_ctl"), "promote", "-w", "-t", "30",
                                "-D", str(role.data_dir)], **self._as_postgres())
        roles.wait_until(lambda: roles.pg_in_recovery(role.port or 0) is False, 30.0,
                         f"{name} promotion", Path(role.log))
        log.info("promoted %s to primary", name)
        return role

    def reseed(self, name: str) -> RoleState:
        """Rebuild a PostgreSQL role as a standby of the current primary (after a failover
        the old primary must not come back writable beside the new one)."""
        role = self._postgres_role(name)
        primary = next((r for r in self.state.roles.values()
                        if r.kind.startswith("postgres") and r.name != name
                        and roles.pg_in_recovery(r.port or 0) is False), None)
        if primary is None:
            raise StackStartError(f"reseed {name}: no writable primary to copy from")
        self.stop_role(name)
        data_dir = Path(role.data_dir or "")
        shutil.rmtree(data_dir, ignore_errors=True)
        self._chown_postgres(data_dir)
        self._run_logged(name, [
            str(roles.pg_bindir() / "pg_basebackup"), "-h", listen_host(), "-p", str(primary.port),
            "-U", "postgres", "-D", str(data_dir), "-R", "-X", "stream", "--no-sync",
            "--checkpoint=fast"], **self._as_postgres())
        with open(data_dir / "postgresql.auto.conf", "a") as conf:
            conf.write("wal_retrieve_retry_interval = '100ms'\n")
        log.info("reseeded %s as a standby of %s", name, primary.name)
        return self.start_role(name)

    # -- watching ------------------------------------------------------------------------

    def _watch(self) -> None:
        changed = False
        with self._lock:
            for name, proc in list(self._procs.items()):
                role = self.state.roles[name]
                code = proc.poll()
                if code is None or role.state != "running":
                    continue
                role.state, role.exit_code = "exited", code
                log.warning("%s (pid %s) exited with code %s", name, proc.pid, code)
                changed = True
        for role in list(self.state.roles.values()):
            if role.state == "exited" and role.restart == "always" and not self._stopping.is_set():
                since = time.monotonic() - self._last_restart.get(role.name, 0.0)
                if since >= _RESTART_BACKOFF_S:
                    self._last_restart[role.name] = time.monotonic()
                    self._restart(role)
                    changed = True
        if changed:
            self._save()

    def _restart(self, role: RoleState) -> None:
        try:
            role.restarts += 1
            self.start_role(role.name)
            log.info("restarted %s (restart %d)", role.name, role.restarts)
        except StackError as exc:
            log.error("restart of %s failed: %s", role.name, exc)
            role.state = "exited"

    # -- stopping ------------------------------------------------------------------------

    def stop_role(self, name: str, timeout_s: float = 10.0) -> RoleState:
        with self._lock:
            role = self.state.roles[name]
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is None:
                sig = _STOP_SIGNALS.get(role.kind, signal.SIGTERM)
                self._signal(role, proc, sig)
                self._signal(role, proc, signal.SIGCONT)  # a paused process must see it
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    log.warning("%s ignored %s; killing", name, sig.name)
                    self._signal(role, proc, signal.SIGKILL)
                    proc.wait(timeout=5)
            if role.state == "running" or proc is not None:
                role.state = "stopped"
                role.exit_code = proc.returncode if proc is not None else None
            self._save()
            return role

    def _signal(self, role: RoleState, proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if role.kind == "nginx":
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    def _stop_all(self) -> None:
        for name in reversed(list(self.state.roles)):
            if name in self._procs:
                self.stop_role(name)

    # -- control socket ------------------------------------------------------------------

    def _serve_control(self) -> socketserver.ThreadingUnixStreamServer:
        supervisor = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    request = json.loads(self.rfile.readline())
                    reply = supervisor.control(request)
                except (StackError, KeyError, ValueError) as exc:
                    reply = {"ok": False, "error": str(exc)}
                self.wfile.write(json.dumps(reply).encode() + b"\n")

        path = self.run_dir / "control.sock"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        os.chmod(path, 0o600)
        threading.Thread(target=server.serve_forever, daemon=True, name="control").start()
        return server

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        """Handle {"op": "start"|"stop"|"restart"|"promote"|"reseed"|"status", "role": NAME}."""
        op, name = request.get("op"), request.get("role")
        if op == "status":
            return {"ok": True, "state": self.state.to_json()}
        if name not in self.state.roles:
            raise KeyError(f"unknown role {name!r}")
        if op == "stop":
            role = self.stop_role(str(name))
        elif op == "start":
            role = self.start_role(str(name))
        elif op == "restart":
            self.stop_role(str(name))
            role = self.start_role(str(name))
        elif op == "promote":
            role = self.promote(str(name))
        elif op == "reseed":
            role = self.reseed(str(name))
        else:
            raise ValueError(f"unknown op {op!r}")
        return {"ok": True, "role": role.__dict__}
