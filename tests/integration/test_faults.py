"""Contract section 7 on a stack of its own: PostgreSQL and Redis killed (SIGKILL) under open
viewer sockets, then restarted through the supervisor."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import httpx
import pytest
import redis

from harness.suites.viewer_probe import ViewerProbe
from stack import local
from tests.support import RunningStack, publish_form, running_stack, wait_for


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[RunningStack]:
    with running_stack("faults") as running:
        yield running


def kill(stack: RunningStack, role: str) -> None:
    pid = stack.refresh().role(role).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: stack.refresh().role(role).state == "exited", 5.0)


def live_stream(stack: RunningStack, client: httpx.Client, title: str) -> dict[str, str]:
    body: dict[str, str] = client.post("/api/v1/streams", json={"title": title,
                                                                 "description": "d"}).json()
    httpx.post(f"{stack.api}/api/v1/streams/auth", data=publish_form(body["rtmp_key"]))
    return body


def test_postgres_killed_and_restarted(fault_stack: RunningStack) -> None:
    stack = fault_stack
    token = stack.minter.mint()
    with stack.client(token) as api:
        before = [live_stream(stack, api, f"before-{i}") for i in range(3)]
        viewer = ViewerProbe(f"{stack.ws}/api/v1/streams/{before[0]['id']}/ws?token={token}")
        viewer.connect()
        assert viewer.wait_for("connection_established") is not None
        kill(stack, "postgres")

        health = httpx.get(f"{stack.api}/health")
        assert health.status_code == 503
        assert health.json()["checks"]["database"]["status"] == "down"
        write = api.post("/api/v1/streams", json={"title": "during", "description": "d"})
        assert write.status_code == 503 and write.json()["error"] == "SERVICE_UNAVAILABLE"
        # Reads of active streams keep working from Redis.
        listed = api.get("/api/v1/streams/active", params={"limit": 100})
        assert listed.status_code == 200
        assert {s["id"] for s in before} <= {s["id"] for s in listed.json()["streams"]}
        assert api.get(f"/api/v1/streams/{before[1]['id']}").status_code == 200
        # Open viewer sockets stay up and still answer.
        viewer.send("get_stream_info", request_id="during-outage")
        assert viewer.wait_for("stream_info") is not None
        assert not viewer.closed.is_set()

        local.control(stack.run_dir, "start", "postgres")
        assert wait_for(lambda: httpx.get(f"{stack.api}/health").status_code == 200, 15.0)
        after = api.post("/api/v1/streams", json={"title": "after", "description": "d"})
        assert after.status_code == 201
        for stream in before:  # nothing written before the kill was lost
            body = api.get(f"/api/v1/streams/{stream['id']}").json()
            assert (body["title"], body["status"]) == (stream["title"], "active")
        assert not viewer.closed.is_set()
        viewer.close()


def test_redis_killed_and_restarted(fault_stack: RunningStack) -> None:
    stack = fault_stack
    token = stack.minter.mint()
    with stack.client(token) as api:
        stream = live_stream(stack, api, "redis-outage")
        url = f"{stack.ws}/api/v1/streams/{stream['id']}/ws?token={token}"
        first = ViewerProbe(url).connect()
        assert first.wait_for("viewer_count_changed") is not None
        kill(stack, "redis")

        assert wait_for(lambda: httpx.get(f"{stack.api}/health").json()["status"] == "degraded",
                        5.0)
        assert httpx.get(f"{stack.api}/health").status_code == 200
        created = api.post("/api/v1/streams", json={"title": "no-redis", "description": "d"})
        assert created.status_code == 201
        assert api.get("/api/v1/streams/active").status_code == 200
        second = ViewerProbe(url).connect()  # in-process counting and fan-out
        assert wait_for(lambda: api.get(f"/api/v1/streams/{stream['id']}").json()
                        ["viewer_count"] == 2, 5.0)
        assert second.wait_for("viewer_count_changed") is not None

        local.control(stack.run_dir, "start", "redis")
        assert wait_for(lambda: httpx.get(f"{stack.api}/health").json()["status"] == "ok", 10.0)
        # Redis state was rebuilt from the instance and the database.
        store = redis.Redis.from_url(stack.state.endpoints["redis_url"], decode_responses=True)
        assert stream["id"] in store.smembers("nova:active")
        assert store.hgetall(f"nova:viewers:{stream['id']}") == {"api-1": "2"}
        assert api.get(f"/api/v1/streams/{stream['id']}").json()["viewer_count"] == 2
        assert not first.closed.is_set() and not second.closed.is_set()
        first.close()
        second.close()
