"""Hosts on one machine: network namespaces joined by a bridge, each with one address of the
test's choosing (10.251.7.0/24, which exists only inside them). Created and removed by the
test that asks; `Unavailable` says why when the kernel or the user may not make them."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Sequence

SUBNET = "10.251.7"


class Unavailable(Exception):
    """Namespaces cannot be made here; the message is the reason."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise Unavailable(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")


class Hosts:
    """Namespaces named after hosts; `address(host)` is its only address, `command(host, argv)`
    runs argv inside it (`ip netns exec` execs, so the process's pid is argv's)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.tag = uuid.uuid4().hex[:5]
        self.names = list(names)
        self.hub = f"nova-hub-{self.tag}"
        self.made: list[str] = []

    def namespace(self, host: str) -> str:
        return f"nova-{self.names.index(host)}-{self.tag}"

    def address(self, host: str) -> str:
        return f"{SUBNET}.{self.names.index(host) + 1}"

    def command(self, host: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(host), *argv]

    def create(self) -> None:
        _ip("netns", "add", self.hub)
        self.made.append(self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for index, host in enumerate(self.names):
            space, port = self.namespace(host), f"h{self.tag}{index}"
            _ip("netns", "add", space)
            self.made.append(space)
            _ip("-n", space, "link", "set", "lo", "up")
            _ip("-n", self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                "netns", space)
            _ip("-n", self.hub, "link", "set", port, "master", "br0", "up")
            _ip("-n", space, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", space, "link", "set", "eth0", "up")

    def remove(self) -> None:
        """Every namespace made (their veth pairs go with them)."""
        for space in reversed(self.made):
            subprocess.run(["ip", "netns", "del", space], capture_output=True, timeout=30)
        self.made.clear()


def made_hosts(names: Sequence[str]) -> Hosts:
    """The namespaces for `names` (remove them with `remove()`); Unavailable, with nothing
    left behind, when they cannot be made here."""
    if os.geteuid() != 0:
        raise Unavailable("network namespaces need root (this user is not)")
    if shutil.which("ip") is None:
        raise Unavailable("the `ip` program (iproute2) is not installed")
    made = Hosts(names)
    try:
        made.create()
    except Unavailable:
        made.remove()
        raise
    return made
