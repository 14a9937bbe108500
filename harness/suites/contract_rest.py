"""Checklist §2 ("OpenAPI spec reflects current endpoints; request/response schemas current;
error codes documented") and §17 (input validation), the checks that read the target's profile
and OpenAPI file directly: the profile's wire shapes are what the target serves, its routes and
error codes are in the document, every documented operation is served, values just outside a
parameter's bounds are refused with a documented 4xx, and an undeclared method gets 405 with
`Allow`. The generated requests per operation are in contract_props.py."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from harness.suites.base import Evidence, Session, check, expect
from harness.suites.contract_spec import HTTP_METHODS, Operation, Spec, curl, load_spec

OVERFLOW = "9" * 30  # beyond every integer type a database or language has
NOT_A_UUID = "not-a-uuid"

# (profile route, method the harness uses it with, profile error codes its operation must list)
PROFILE_ROUTES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("create", "POST", ("invalid_body", "no_token", "rate_limited")),
    ("get", "GET", ("unknown_stream",)),
    ("delete", "DELETE", ("forbidden", "unknown_stream")),
    ("list_active", "GET", ()),
    ("health", "GET", ()),
    ("metrics", "GET", ()),
    ("webhook_auth", "POST", ("webhook_reject",)),
    ("webhook_done", "POST", ()),
    ("join", "POST", ()),
    ("leave", "POST", ()))


def _profile_routes(s: Session) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(route name, method, path template, error names) for every route the profile has,
    the viewer socket (a GET) included."""
    profile = s.target.profile
    routes: list[tuple[str, str, str, tuple[str, ...]]] = []
    for name, method, errors in PROFILE_ROUTES:
        template = getattr(profile.paths, name)
        if template is not None:
            routes.append((name, method, str(template), errors))
    socket_errors = ("unknown_stream",) + (("stream_gone",) if profile.errors.stream_gone
                                           else ())
    routes.append(("viewer socket", "GET", profile.ws.url.format(ws_base="", id="{id}"),
                   socket_errors))
    if profile.listing.needs_auth:
        routes = [(n, m, p, (*e, "no_token") if n == "list_active" else e)
                  for n, m, p, e in routes]
    return routes


@check("contract", "profile-shapes", "§2 the profile's paths, fields, status words and list "
                                     "envelope are what the target serves")
def profile_shapes(s: Session) -> str:
    profile, problems = s.target.profile, []
    _, token = s.user()
    response = s.request("POST", profile.path("create"), token=token,
                         json=profile.create_payload("contract shapes", "d", "us-west-2"))
    expect(response.status_code in (200, 201),
           f"POST {profile.path('create')} → HTTP {response.status_code}: the profile's "
           f"create route or body is not what the target takes")
    created: dict[str, Any] = response.json()
    missing = [wire for wire in profile.fields.model_dump().values() if wire not in created]
    if missing:
        problems.append(f"a created Stream lacks the profile's fields {', '.join(missing)} "
                        f"(it has {', '.join(sorted(created))})")
    if profile.status_of(created).startswith("unknown:"):
        problems.append(f"status {created.get(profile.fields.status)!r} is none of the "
                        f"profile's words {sorted(profile.statuses.model_dump().values())}")
    problems += _listing_problems(s, token)
    unknown = s.request("GET", profile.path("get", str(uuid.uuid4())), token=token)
    if unknown.status_code != profile.errors.unknown_stream:
        problems.append(f"an unknown stream → HTTP {unknown.status_code}, the profile says "
                        f"{profile.errors.unknown_stream}")
    health = s.request("GET", profile.paths.health)
    if health.status_code != 200:
        problems.append(f"GET {profile.paths.health} → HTTP {health.status_code}")
    expect(not problems, "; ".join(problems))
    return (f"create, {len(profile.fields.model_dump())} Stream fields, status words, the list "
            f"envelope, the unknown-stream status and health are as profile "
            f"{profile.name} says")


def _listing_problems(s: Session, token: str) -> list[str]:
    listing = s.target.profile.listing
    path = s.target.profile.path("list_active")
    response = s.request("GET", f"{path}?{listing.limit_param}=5", token=token)
    if response.status_code != 200:
        return [f"GET {path} (the profile's listing) → HTTP {response.status_code}"]
    body = response.json()
    absent = [key for key in (listing.streams, listing.total) if key not in body]
    return [f"the listing lacks the profile's envelope keys {', '.join(absent)}"] if absent \
        else []


@check("contract", "spec-endpoints", "§2 the OpenAPI spec reflects the current endpoints: "
                                     "every profile route documented, every operation served")
def spec_endpoints(s: Session) -> str:
    spec, token, stream_id = _spec_and_stream(s, "contract endpoints")
    undocumented = [f"{method} {path} ({name})" for name, method, path, _ in _profile_routes(s)
                    if spec.find(method, path) is None]
    unserved = []
    # DELETE last: it ends the stream the other operations are asked about.
    for operation in sorted(spec.operations(), key=lambda o: o.method == "DELETE"):
        path = _concrete(operation.path, stream_id)
        response = s.request(operation.method, path, token=token)
        if response.status_code in (405, 501) or (response.status_code == 404 and
                                                  not operation.documents(404)):
            unserved.append(f"{operation.label} → HTTP {response.status_code}")
    problems = ([f"routes of profile {s.target.profile.name} missing from {spec.file.name}: "
                 + ", ".join(undocumented)] if undocumented else []) + \
        ([f"documented but not served: {', '.join(unserved)}"] if unserved else [])
    expect(not problems, "; ".join(problems))
    return (f"{len(_profile_routes(s))} profile routes in {spec.file.name}; its "
            f"{len(spec.operations())} operations all served")


@check("contract", "error-codes-documented", "§2 error codes documented: each error status "
                                             "the profile expects is in the spec")
def error_codes_documented(s: Session) -> str:
    spec, errors = load_spec(s.target), s.target.profile.errors
    problems, listed = [], 0
    for name, method, path, error_names in _profile_routes(s):
        operation = spec.find(method, path)
        if operation is None:
            continue  # spec-endpoints reports it
        for error in error_names:
            status = getattr(errors, error)
            listed += 1
            if not operation.documents(status):
                problems.append(f"{operation.label} ({name}) does not list {status} "
                                f"({error}; it lists {', '.join(sorted(operation.statuses()))})")
    s.evidence.append(Evidence(f"read {spec.file}", None, f"{listed} error statuses looked up "
                               f"in {len(spec.operations())} operations", 0.0))
    expect(not problems, "; ".join(problems))
    return f"{listed} error statuses of profile {s.target.profile.name} documented"


def _spec_and_stream(s: Session, title: str) -> tuple[Spec, str, str]:
    """The target's OpenAPI document, a new user's token and a stream that user created (for
    the operations whose path names one)."""
    spec = load_spec(s.target)
    _, token = s.user()
    return spec, token, s.stream_id(s.create_stream(token, title))


def _concrete(path: str, stream_id: str) -> str:
    """`path` with every parameter set to `stream_id` (the documents name only stream ids)."""
    for name in [part[1:-1] for part in path.split("/") if part.startswith("{")]:
        path = path.replace(f"{{{name}}}", stream_id)
    return path


def _outside_bounds(schema: dict[str, Any]) -> list[str]:
    """Values a parameter with `schema` must refuse."""
    kind, values = schema.get("type"), []
    if kind == "integer":
        values.append(OVERFLOW)
        if "maximum" in schema:
            values.append(str(int(schema["maximum"]) + 1))
        if "minimum" in schema:
            values.append(str(int(schema["minimum"]) - 1))
    if kind == "string" and schema.get("format") == "uuid":
        values.append(NOT_A_UUID)
    if kind == "string" and "maxLength" in schema:
        values.append("x" * (int(schema["maxLength"]) + 1))
    return values


def _boundary_requests(spec: Spec, stream_id: str
                       ) -> list[tuple[Operation, str, dict[str, str], str]]:
    """(operation, concrete path, query, what is wrong) for each out-of-bounds value."""
    requests = []
    for operation in spec.operations():
        for parameter in operation.parameters(spec.document, spec.path_item(operation)):
            where, name = parameter.get("in"), str(parameter.get("name"))
            for value in _outside_bounds(parameter.get("schema") or {}):
                what = f"{where} {name}={value[:40]}"
                if where == "query":
                    requests.append((operation, _concrete(operation.path, stream_id),
                                     {name: value}, what))
                elif where == "path":
                    requests.append((operation, operation.path.replace(f"{{{name}}}", value),
                                     {}, what))
    return requests


@check("contract", "boundaries", "§17 input validation: values just outside a parameter's "
                                 "documented bounds → a documented 4xx, never a 5xx")
def boundaries(s: Session) -> str:
    spec, token, stream_id = _spec_and_stream(s, "contract boundaries")
    problems, requests = [], _boundary_requests(spec, stream_id)
    for operation, path, query, what in requests:
        response = s.request(operation.method, path, token=token, params=query)
        if not (400 <= response.status_code < 500 and operation.documents(response.status_code)):
            again = curl(operation.method, s.target.api_base + path, query=query, token=True)
            problems.append(f"{operation.label} with {what} → HTTP {response.status_code} "
                            f"({again})")
    expect(bool(requests), f"{spec.file.name} bounds no parameter: nothing to try")
    expect(not problems, "; ".join(problems))
    return f"{len(requests)} out-of-bounds values, each refused with a documented 4xx"


@check("contract", "undeclared-methods", "§2 an undeclared method → 405 with an Allow header "
                                         "listing the documented ones (RFC 9110)")
def undeclared_methods(s: Session) -> str:
    spec, token, stream_id = _spec_and_stream(s, "contract methods")
    problems, tried = [], 0
    for path, declared in spec.paths().items():
        concrete = _concrete(path, stream_id)
        for method in [m for m in HTTP_METHODS
                       if m not in declared and not _other_template_serves(spec, m, path)]:
            tried += 1
            problem = _allow_problem(s.request(method, concrete, token=token), declared)
            if problem:
                problems.append(f"{method} {path} → {problem} "
                                f"({curl(method, s.target.api_base + concrete, token=True)})")
    expect(not problems, "; ".join(problems))
    return f"{tried} undeclared methods on {len(spec.paths())} paths → 405 with Allow"


def _other_template_serves(spec: Spec, method: str, path: str) -> bool:
    """Whether `method` on the literal `path` is another documented operation: DELETE
    /streams/active is DELETE /streams/{stream_id} with the id "active" (its 404 is documented)."""
    segments = path.split("/")
    for operation in spec.operations():
        other = operation.path.split("/")
        if operation.method == method and operation.path != path and len(other) == len(segments) \
                and all(o == p or o.startswith("{") for o, p in zip(other, segments, strict=True)):
            return True
    return False


def _allow_problem(response: httpx.Response, declared: set[str]) -> str | None:
    if response.status_code != 405:
        return f"HTTP {response.status_code}, expected 405"
    allow = response.headers.get("Allow")
    if allow is None:
        return "405 without an Allow header"
    allowed = {method.strip().upper() for method in allow.split(",")}
    missing = sorted(declared - allowed)
    return f"Allow: {allow} lacks {', '.join(missing)}" if missing else None
