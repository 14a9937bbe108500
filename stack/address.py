"""The address every listener of the local stack uses: loopback, or the one `stack up --listen
ADDR` names (a test's network namespace, a lab host on a private network). One per process:
the supervisor takes it from the stack's options, the CLI from the stack's state."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"
_listen = LOOPBACK


def listen_host() -> str:
    """Where this process's stack listens (and where its own probes connect)."""
    return _listen


def cannot_listen(host: str, port: int = 0) -> str | None:
    """Why this machine cannot listen on host:port now (None when it can): the address is not
    one of its own, or the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return str(exc.strerror)
    return None


def use_listen_host(host: str) -> None:
    """Set once, before any port is chosen or probed."""
    global _listen
    _listen = host
