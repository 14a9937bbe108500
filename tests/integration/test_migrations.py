"""Migrations apply in order, record themselves, and revert with their down steps."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from stack.service.migrate import discover, migrate_down, migrate_up
from tests.support import RunningStack


async def _roundtrip(dsn: str, scratch: str) -> None:
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{scratch}"')
    try:
        conn = await asyncpg.connect(dsn.rsplit("/", 1)[0] + f"/{scratch}")
        try:
            versions = [m.version for m in discover()]
            assert await migrate_up(conn) == versions
            assert await migrate_up(conn) == []  # idempotent
            tables = {r["tablename"] for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            assert {"streams", "viewer_sessions", "stream_events", "schema_migrations"} <= tables
            assert await migrate_down(conn, steps=len(versions)) == list(reversed(versions))
            tables = {r["tablename"] for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            assert tables == {"schema_migrations"}
            assert await migrate_up(conn) == versions
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{scratch}"')
        await admin.close()


def test_migrations_up_down_up(stack: RunningStack) -> None:
    dsn = stack.state.endpoints["database_url"]
    asyncio.run(_roundtrip(dsn, f"scratch_{uuid.uuid4().hex[:8]}"))


def test_every_migration_has_a_down_step() -> None:
    for migration in discover():
        assert migration.down_sql.strip(), migration.name
