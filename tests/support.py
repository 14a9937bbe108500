"""Helpers shared by the integration and e2e tests: a real local stack in a private folder,
extra service instances with their own settings, and small HTTP helpers."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiohttp import web

from harness.auth.keys import minter_for
from harness.auth.minting import TokenMinter
from stack import local, roles
from stack.jwtkeys import service_jwt_env
from stack.roles import StackOptions
from stack.state import StackState, read_state


def new_run_dir(tag: str) -> Path:
    """Outside pytest's 0700 tmp tree: the postgres user must reach the data directory."""
    return Path(tempfile.mkdtemp(prefix=f"nova-test-{tag}-", dir="/var/tmp"))


@dataclass
class RunningStack:
    run_dir: Path
    state: StackState
    minter: TokenMinter

    @property
    def api(self) -> str:
        return self.state.endpoints["api_base"]

    @property
    def ws(self) -> str:
        return self.state.endpoints["ws_base"]

    def instance_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.state.roles[name].port}"

    def refresh(self) -> StackState:
        self.state = read_state(self.run_dir)
        return self.state

    def client(self, token: str | None = None, base: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=base or self.api, headers=headers, timeout=10.0)


@contextmanager
def running_stack(tag: str, **options: object) -> Iterator[RunningStack]:
    run_dir = new_run_dir(tag)
    try:
        state, _ = local.up(StackOptions(run_dir=run_dir, **options))  # type: ignore[arg-type]
        yield RunningStack(run_dir, state, minter_for(run_dir=run_dir))
    finally:
        try:
            local.down(run_dir)
        finally:
            # NOVA_TEST_KEEP_STACKS=1 keeps the stack's folder (service and server logs) for a
            # post-mortem of a failed integration test.
            if not os.environ.get("NOVA_TEST_KEEP_STACKS"):
                shutil.rmtree(run_dir, ignore_errors=True)


@contextmanager
def extra_instance(stack: RunningStack, name: str, **env: str) -> Iterator[str]:
    """Another service process on the stack's PostgreSQL and Redis with its own settings;
    yields its base URL."""
    port = roles.free_port()
    endpoints = stack.state.endpoints
    full_env = {
        **os.environ,
        **service_jwt_env(stack.run_dir, env.pop("NOVA_JWT_ALGORITHM", "HS256")),
        "NOVA_DATABASE_URL": endpoints["database_url"], "NOVA_REDIS_URL": endpoints["redis_url"],
        "NOVA_RTMP_URL": endpoints["rtmp_url"], "NOVA_HLS_BASE": endpoints["hls_base"],
        "NOVA_PORT": str(port), "NOVA_INSTANCE_ID": name, **env,
    }
    log = open(stack.run_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "stack.service"], env=full_env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        roles.wait_until(lambda: roles.http_status(f"{url}/health") == 200, 20.0, name,
                         Path(log.name), alive=proc.poll)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def wait_for(predicate: object, timeout_s: float = 10.0, poll_s: float = 0.05) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return False


def publish_form(key: str, client_id: str = "1") -> dict[str, str]:
    """The form nginx-rtmp posts to the publish webhooks."""
    return {"app": "live", "flashver": "FMLE/3.0", "swfurl": "", "tcurl": "rtmp://127.0.0.1/live",
            "pageurl": "", "addr": "127.0.0.1", "clientid": client_id, "call": "publish",
            "name": key, "type": "live"}


@contextmanager
def running_prometheus(folder: Path, jobs: dict[str, list[str]],
                       rule_files: tuple[Path, ...] = ()) -> Iterator[str]:
    """Debian's Prometheus scraping `jobs` (name → host:port targets) every second, with
    `rule_files` loaded; yields its URL once it is ready. Stopped by PID afterwards."""
    binary = shutil.which("prometheus")
    assert binary, "scripts/setup installs prometheus"
    port = roles.free_port()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prometheus.yml").write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": name, "static_configs": [{"targets": targets}]}
                           for name, targets in jobs.items()]}))
    with (folder / "prometheus.log").open("ab") as log:
        proc = subprocess.Popen([binary, f"--config.file={folder / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={folder / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: roles.http_status(f"{url}/-/ready") == 200, 30.0, 0.2), \
            (folder / "prometheus.log").read_text()[-2000:]
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def serving(app: web.Application) -> Iterator[str]:
    """An aiohttp app on a free loopback port, in a thread with its own event loop (a stand-in
    server for a test); yields its base URL, and stops it afterwards."""
    loop = asyncio.new_event_loop()
    ready: list[str] = []
    started = threading.Event()
    runner = web.AppRunner(app)

    async def serve() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.append(f"http://127.0.0.1:{port}")

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10), "the test server did not start"
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
