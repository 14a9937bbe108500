"""Serves a run's series over HTTP while it runs (a service of the run: started with the
watchers, stopped with them), and refuses a port it cannot have before anything starts."""

from __future__ import annotations

import socket
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from records.errors import InputError


def port_problem(host: str, port: int) -> str | None:
    """Why `host:port` cannot serve the metrics, or None (checked before a run starts)."""
    if not 1 <= port <= 65535:
        return f"--metrics-port {port}: must be 1..65535"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As the server will (HTTPServer reuses addresses): a closed run's connections
            # in TIME_WAIT do not keep the next run from the port.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        return f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror})"
    return None


class MetricsServer:
    """`/metrics` (any path answers) on host:port for one registry."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry, self.host, self.port = registry, host, port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def start(self) -> None:
        try:
            self._server, self._thread = start_http_server(self.port, addr=self.host,
                                                           registry=self.registry)
        except OSError as exc:
            raise InputError([f"--metrics-port {self.port}: cannot listen on "
                              f"{self.host}:{self.port} ({exc.strerror})"]) from None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
