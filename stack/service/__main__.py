"""`python -m stack.service`: run one instance of the reference service."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from stack.errors import ConfigError
from stack.service.app import create_app
from stack.service.config import settings_from_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack.service",
        description="Reference Nova Streaming service. Settings come from NOVA_* variables "
                    "(docs/service.md); options here override host and port.")
    parser.add_argument("--host", help="listen address (NOVA_HOST)")
    parser.add_argument("--port", type=int, help="listen port (NOVA_PORT)")
    args = parser.parse_args(argv)
    try:
        settings = settings_from_env()
    except ConfigError as exc:
        print(f"nova-service: bad settings: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s {settings.instance_id} %(levelname)s %(name)s: %(message)s",
    )
    # aiokafka logs every failed reconnect to a broker that is down at ERROR; the analytics
    # publisher reports an outage itself, once per retry.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    web.run_app(
        create_app(settings),
        host=args.host or settings.host,
        port=args.port or settings.port,
        backlog=4096,
        access_log=None,
        print=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
