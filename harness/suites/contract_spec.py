"""The contract suite's view of a target's OpenAPI document: its operations (with the path the
target serves them at), their documented statuses and parameters, and the request a failure
is reproduced with (a curl command, tokens redacted)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import yaml

from harness.errors import CheckFailed, CheckSkipped
from harness.suites.base import Target

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
BEARER = re.compile(r"Bearer\s+[^\s'\"]+")
TOKEN_QUERY = re.compile(r"([?&]token=)[^&\s'\"]+")
PARAMETER = re.compile(r"\{[^}]*\}")
AUTH_HEADER = '"Authorization: Bearer $TOKEN"'  # double quotes: the shell fills in $TOKEN


@dataclass(frozen=True)
class Operation:
    """One operation of the document: `path` is where the target serves it (the servers
    entry's path before the document's), `spec_path` the document's own key."""

    method: str
    path: str
    spec_path: str
    body: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def statuses(self) -> set[str]:
        """Documented response keys: "200", "4XX", "default"."""
        return {str(code).upper() for code in self.body.get("responses", {})}

    def documents(self, status: int) -> bool:
        keys = self.statuses()
        return str(status) in keys or f"{status // 100}XX" in keys or "DEFAULT" in keys

    def parameters(self, document: dict[str, Any], path_item: dict[str, Any]
                   ) -> list[dict[str, Any]]:
        """Path-level and operation-level parameters, references resolved."""
        listed = [*path_item.get("parameters", []), *self.body.get("parameters", [])]
        return [resolve(document, item) for item in listed]

    def upgrades(self) -> bool:
        """The viewer socket: a 101 is documented (the walk covers it, not plain requests)."""
        return "101" in self.statuses()


@dataclass(frozen=True)
class Spec:
    """A loaded OpenAPI document and where the target serves its paths."""

    file: Path
    document: dict[str, Any]
    base_path: str

    def operations(self) -> list[Operation]:
        found = []
        for spec_path, item in self.document.get("paths", {}).items():
            for method, body in item.items():
                if method.upper() in HTTP_METHODS:
                    found.append(Operation(method.upper(), self.base_path + spec_path,
                                           spec_path, body))
        return found

    def path_item(self, operation: Operation) -> dict[str, Any]:
        item: dict[str, Any] = self.document["paths"][operation.spec_path]
        return item

    def find(self, method: str, path: str) -> Operation | None:
        """The operation serving `method` on a concrete path template (parameter names may
        differ: `{id}` matches `{stream_id}`)."""
        shape = PARAMETER.sub("{}", path)
        for operation in self.operations():
            if operation.method == method and PARAMETER.sub("{}", operation.path) == shape:
                return operation
        return None

    def paths(self) -> dict[str, set[str]]:
        """Served path → the methods documented on it."""
        methods: dict[str, set[str]] = {}
        for operation in self.operations():
            methods.setdefault(operation.path, set()).add(operation.method)
        return methods


def resolve(document: dict[str, Any], node: Any) -> Any:
    """`node` with a local `$ref` followed (one level, as parameters and responses use)."""
    if isinstance(node, dict) and isinstance(node.get("$ref"), str) and \
            node["$ref"].startswith("#/"):
        target: Any = document
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        return target
    return node


def spec_file(target: Target) -> Path:
    """The OpenAPI file: --openapi, else the profile's; SKIPPED when neither names one."""
    named = target.contract.openapi or target.profile.openapi
    if named is None:
        raise CheckSkipped(f"profile {target.profile.name} names no OpenAPI file (give one "
                           f"with --openapi FILE or the profile's `openapi:`)")
    return Path(named)


def load_spec(target: Target) -> Spec:
    """The target's OpenAPI document; FAIL when it cannot be read as one."""
    file = spec_file(target)
    try:
        document = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CheckFailed(f"OpenAPI file {file}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        raise CheckFailed(f"OpenAPI file {file}: no `paths` mapping (not an OpenAPI document)")
    servers = document.get("servers") or [{}]
    base_path = urlsplit(str(servers[0].get("url", ""))).path.rstrip("/")
    return Spec(file, document, base_path)


def redact(text: str) -> str:
    """`text` without bearer tokens or `token=` query values."""
    return TOKEN_QUERY.sub(r"\1[redacted]", BEARER.sub("Bearer [redacted]", text))


def runnable_curl(command: str) -> str:
    """schemathesis's curl command with its filtered Authorization header as the one our own
    commands carry (`$TOKEN`, filled in by the shell), and no token left in it."""
    return redact(command).replace("-H 'Authorization: [Filtered]'", f"-H {AUTH_HEADER}")


def curl(method: str, url: str, *, query: dict[str, str] | None = None,
         token: bool = False, json_body: str | None = None) -> str:
    """A curl command that repeats a request; the token shows as `$TOKEN`."""
    if query:
        url += "?" + urlencode(query)
    parts = ["curl", "-X", method, shlex.quote(url)]
    if token:
        parts += ["-H", AUTH_HEADER]
    if json_body is not None:
        parts += ["-H", "'Content-Type: application/json'", "--data", shlex.quote(json_body)]
    return " ".join(parts)
