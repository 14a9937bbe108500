"""SQL migrations: `NNNN_name.up.sql` / `NNNN_name.down.sql`, applied in order and recorded
in `schema_migrations`. An advisory lock lets several instances start at once."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_LOCK_KEY = 0x4E4F5641  # "NOVA"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.up\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up_sql: str
    down_sql: str


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration in the folder, in version order; each must have its down step."""
    found: list[Migration] = []
    for up in sorted(directory.glob("*.up.sql")):
        match = _NAME.match(up.name)
        if not match:
            continue
        down = up.with_name(up.name.replace(".up.sql", ".down.sql"))
        found.append(Migration(int(match[1]), match[2], up.read_text(), down.read_text()))
    return found


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def applied_versions(conn: asyncpg.Connection) -> list[int]:
    await conn.execute(_CREATE_TABLE)
    rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    return [int(r["version"]) for r in rows]


async def migrate_up(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply every pending migration; return the versions applied now."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        done = set(await applied_versions(conn))
        applied: list[int] = []
        for migration in discover(directory):
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.up_sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version, migration.name,
                )
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def migrate_down(conn: asyncpg.Connection, steps: int = 1,
                       directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Revert the newest `steps` applied migrations; return the versions reverted."""
    by_version = {m.version: m for m in discover(directory)}
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        reverted: list[int] = []
        for version in reversed(await applied_versions(conn)):
            if len(reverted) >= steps:
                break
            async with conn.transaction():
                await conn.execute(by_version[version].down_sql)
                await conn.execute("DELETE FROM schema_migrations WHERE version = $1", version)
            reverted.append(version)
        return reverted
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def _main(dsn: str, direction: str, steps: int) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        if direction == "up":
            return await migrate_up(conn)
        return await migrate_down(conn, steps)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.service.migrate")
    parser.add_argument("direction", choices=["up", "down"])
    parser.add_argument("--dsn", required=True, help="PostgreSQL DSN of the nova_streaming db")
    parser.add_argument("--steps", type=int, default=1, help="how many to revert with 'down'")
    args = parser.parse_args(argv)
    versions = asyncio.run(_main(args.dsn, args.direction, args.steps))
    print(f"{args.direction}: {versions or 'nothing to do'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
