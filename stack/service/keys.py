"""Typed application keys (aiohttp AppKey) shared by routes and middleware."""

from __future__ import annotations

from aiohttp import web

from stack.service.core import NovaService

SERVICE = web.AppKey("service", NovaService)
