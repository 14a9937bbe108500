"""A stand-in for the three Grafana API calls the §5/§8 dashboard check makes (no Grafana
server installs on these machines): the dashboard by uid (deploy/grafana/nova-harness.json),
the datasource list, and the datasource proxy — which forwards to a real Prometheus, so the
panel queries are answered by real data. Every call needs the bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from aiohttp import web

from tests import dashboard
from tests.support import serving

TOKEN = "glsa_standin_token"


def _authorised(request: web.Request) -> None:
    if request.headers.get("Authorization") != f"Bearer {TOKEN}":
        raise web.HTTPUnauthorized(text='{"message": "invalid API key"}',
                                   content_type="application/json")


@contextmanager
def grafana_standin(prometheus: str) -> Iterator[str]:
    async def board(request: web.Request) -> web.Response:
        _authorised(request)
        if request.match_info["uid"] != "nova-harness":
            raise web.HTTPNotFound(text='{"message": "Dashboard not found"}',
                                   content_type="application/json")
        return web.json_response({"dashboard": dashboard.load(), "meta": {}})

    async def sources(request: web.Request) -> web.Response:
        _authorised(request)
        return web.json_response([{"uid": "prom", "type": "prometheus", "isDefault": True}])

    async def proxy(request: web.Request) -> web.Response:
        _authorised(request)
        async with aiohttp.ClientSession() as session, session.get(
                f"{prometheus}/{request.match_info['path']}", params=request.query) as answer:
            return web.Response(status=answer.status, body=await answer.read(),
                                content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/dashboards/uid/{uid}", board)
    app.router.add_get("/api/datasources", sources)
    app.router.add_get("/api/datasources/proxy/uid/prom/{path:.*}", proxy)
    with serving(app) as url:
        yield url
