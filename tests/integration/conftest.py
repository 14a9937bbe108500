from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support import RunningStack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def stack() -> Iterator[RunningStack]:
    """One shared stack with two service instances behind nginx (non-destructive tests)."""
    with running_stack("shared", instances=2) as running:
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
