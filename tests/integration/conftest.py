from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import RunningStack, new_run_dir, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def stack() -> Iterator[RunningStack]:
    """One shared stack with two service instances behind nginx (non-destructive tests)."""
    # Pings every 3 s: the contract walk waits for one (Nova's 30 s would cost each walk 30 s).
    # With the Prometheus role: the §5/§8 verify checks ask it.
    with running_stack("shared", instances=2, prometheus=True,
                       service_env={"NOVA_WS_PING_INTERVAL_S": "3"}) as running:
        yield running


@pytest.fixture
def owner_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def owner_token(stack: RunningStack, owner_id: uuid.UUID) -> str:
    return stack.minter.mint(owner_id)


@pytest.fixture
def api(stack: RunningStack, owner_token: str) -> Iterator[httpx.Client]:
    with stack.client(owner_token) as client:
        yield client


@pytest.fixture
def new_stream(api: httpx.Client) -> dict[str, object]:
    response = api.post("/api/v1/streams", json={"title": "test stream", "description": "d",
                                                 "region": "eu-central-1", "tags": ["a", "b"]})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


@pytest.fixture(scope="module")
def stack_dir() -> Iterator[Path]:
    """A run folder for a module's CLI runs: each `run` starts its stack there and stops it
    again (a run stops the stack it started); removed after the module."""
    run_dir = new_run_dir("run")
    yield run_dir
    subprocess.run([sys.executable, "-m", "harness.cli", "stack", "down", "--run-dir",
                    str(run_dir)], capture_output=True, timeout=60)
    shutil.rmtree(run_dir, ignore_errors=True)
