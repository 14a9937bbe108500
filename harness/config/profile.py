"""Target profiles: everything contract-specific (paths, field names, statuses, list envelope,
WebSocket URL/auth/events/keepalive, webhooks, HLS URL, expected error codes) as data. Two are
built in (`nova-doc`, `nova-served`); a user profile is a YAML file given by path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness.config.analytics import AnalyticsProfile
from harness.config.base import Strict
from records.errors import InputError
from records.yamlio import build, read_yaml, yaml_lines

BUILTIN_DIR = Path(__file__).resolve().parent / "profiles"
CONTRACT_EVENTS = ("connection_established", "viewer_count_changed", "stream_started",
                   "stream_ended", "quality_changed", "ping", "stream_info", "error")


class Paths(Strict):
    create: str
    get: str
    delete: str | None
    list_active: str
    join: str | None
    leave: str | None
    health: str
    metrics: str
    webhook_auth: str
    webhook_done: str


class Fields(Strict):
    id: str
    key: str
    viewers: str
    peak: str
    status: str
    title: str
    description: str
    region: str
    created_at: str
    started_at: str
    ended_at: str
    hls_url: str


class Statuses(Strict):
    scheduled: str
    active: str
    ended: str


class ListEnvelope(Strict):
    streams: str
    total: str
    paging: Literal["offset", "page"]
    limit_param: str
    offset_param: str
    needs_auth: bool


FieldType = Literal["string", "integer", "number", "boolean", "object", "any"]


class WebSocketSpec(Strict):
    url: str
    auth: Literal["query", "header", "none"]
    token_param: str | None
    envelope: Literal["event", "comment"]
    keepalive: Literal["json", "json_type", "protocol", "off"]
    info_request: str | None
    events: dict[str, str | None]
    # How often the server's keepalive ping comes: the contract walk waits this long, and 5 s
    # more, for one.
    ping_interval_s: float = Field(default=30.0, gt=0)
    # Contract event → the data fields its documents promise, with their JSON types (the
    # contract walk holds every frame it sees to them).
    fields: dict[str, dict[str, FieldType]] = Field(default_factory=dict)


class HlsSpec(Strict):
    url: str


class ErrorCodes(Strict):
    unknown_stream: int
    no_token: int
    bad_token: int
    forbidden: int
    invalid_body: int
    rate_limited: int
    webhook_reject: int
    # The status a socket upgrade gets for a stream that has ended (the reference: 410, an
    # extension to Nova's documents); null when the target has none, so a refused reconnect
    # is never taken for the stream's end.
    stream_gone: int | None = 410


class JwtSpec(Strict):
    algorithm: Literal["HS256", "RS256"]
    audience: str | None
    role_claim: bool


class RateLimitSpec(Strict):
    spread: Literal["many_users", "forwarded_for", "none"]


class Profile(Strict):
    """One target profile. Methods translate between the wire and the contract's words."""

    name: str
    description: str = ""
    # The target's OpenAPI document (a path relative to the profile file): what the contract
    # suite generates requests from and holds responses to.
    openapi: str | None = None
    paths: Paths
    fields: Fields
    statuses: Statuses
    listing: ListEnvelope = Field(alias="list")
    create_body: dict[str, str]
    ws: WebSocketSpec
    hls: HlsSpec
    errors: ErrorCodes
    jwt: JwtSpec
    timestamps: Literal["rfc3339", "rfc3339_any"]
    rate_limit: RateLimitSpec
    analytics: AnalyticsProfile = Field(default_factory=AnalyticsProfile)

    def path(self, name: str, stream_id: str | None = None) -> str:
        template = getattr(self.paths, name)
        if template is None:
            raise InputError([f"profile {self.name}: has no '{name}' route"])
        return str(template).replace("{id}", stream_id or "")

    def stream_field(self, body: dict[str, Any], name: str) -> Any:
        return body.get(getattr(self.fields, name))

    def status_of(self, body: dict[str, Any]) -> str:
        """The contract's status word (scheduled | active | ended) of a wire Stream."""
        wire = body.get(self.fields.status)
        for contract, word in self.statuses.model_dump().items():
            if word == wire:
                return str(contract)
        return f"unknown:{wire}"

    def create_payload(self, title: str, description: str, region: str) -> dict[str, str]:
        values = {"title": title, "description": description, "region": region}
        return {k: v.format(**values) for k, v in self.create_body.items()}

    def streams_of(self, listing: dict[str, Any]) -> list[dict[str, Any]]:
        streams = listing.get(self.listing.streams, [])
        return list(streams) if isinstance(streams, list) else []

    def ws_url(self, ws_base: str, stream_id: str, token: str) -> str:
        url = self.ws.url.format(ws_base=ws_base.rstrip("/"), id=stream_id)
        if self.ws.auth == "query" and self.ws.token_param:
            url += f"?{self.ws.token_param}={token}"
        return url

    def ws_headers(self, token: str) -> list[str]:
        return [f"Authorization: Bearer {token}"] if self.ws.auth == "header" else []

    def event_map(self) -> dict[str, str]:
        """Wire event name → contract event name, for the events this target sends."""
        return {wire: contract for contract, wire in self.ws.events.items() if wire}

    def hls_url(self, hls_base: str, key: str, stream_id: str) -> str:
        return self.hls.url.format(hls_base=hls_base.rstrip("/"), key=key, id=stream_id)


def _check_events(profile: Profile, source: str) -> list[str]:
    problems = []
    for block in ("events", "fields"):
        unknown = sorted(set(getattr(profile.ws, block)) - set(CONTRACT_EVENTS))
        problems += [f"{source}: ws.{block}.{name}: not a contract event (known: "
                     f"{', '.join(CONTRACT_EVENTS)})" for name in unknown]
    return problems


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_profile(name_or_path: str, base_dir: Path | None = None) -> Profile:
    """A built-in profile by name, or a profile YAML by path (relative to `base_dir`)."""
    if name_or_path in builtin_names():
        path = BUILTIN_DIR / f"{name_or_path}.yaml"
    else:
        path = Path(name_or_path)
        if not path.is_absolute() and base_dir is not None and not path.exists():
            path = base_dir / path
        if not path.exists():
            raise InputError([f"profile {name_or_path!r}: not a built-in profile "
                              f"({', '.join(builtin_names())}) and no such file"])
    hint = "compare with harness/config/profiles/nova-doc.yaml"
    profile = build(Profile, read_yaml(path, "profile"), f"profile {path.name}", hint,
                    yaml_lines(path))
    problems = _check_events(profile, f"profile {path.name}")
    spec = _openapi_path(profile, path)
    if spec is not None and not spec.is_file():
        problems.append(f"profile {path.name}: openapi {profile.openapi}: no such file")
    if problems:
        raise InputError(problems, hint=hint)
    return profile if spec is None else profile.model_copy(update={"openapi": str(spec)})


def _openapi_path(profile: Profile, profile_file: Path) -> Path | None:
    if profile.openapi is None:
        return None
    spec = Path(profile.openapi)
    return spec if spec.is_absolute() else (profile_file.parent / spec).resolve()
