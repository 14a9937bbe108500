"""The reference Nova Streaming service (aiohttp), implementing docs/openapi.yaml and
docs/websocket-protocol.md."""
