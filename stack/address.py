"""The address every listener of the local stack uses: loopback, or the one `stack up --listen
ADDR` names (a test's network namespace, a lab host on a private network). One per process:
the supervisor takes it from the stack's options, the CLI from the stack's state."""

from __future__ import annotations

LOOPBACK = "127.0.0.1"
_listen = LOOPBACK


def listen_host() -> str:
    """Where this process's stack listens (and where its own probes connect)."""
    return _listen


def use_listen_host(host: str) -> None:
    """Set once, before any port is chosen or probed."""
    global _listen
    _listen = host
