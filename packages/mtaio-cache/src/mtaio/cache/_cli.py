"""The ``mtaio-cache-node`` console script: run a :class:`~mtaio.cache.CacheNode` until stopped.

The password can come from ``--password-file`` or the ``MTAIO_CACHE_NODE_PASSWORD``
environment variable rather than ``--password``, which other local users can read in the
process list.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from ._node import CacheNode

__all__ = ("PASSWORD_ENV", "main")

#: The environment variable the password is read from when no flag gives one.
PASSWORD_ENV = "MTAIO_CACHE_NODE_PASSWORD"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtaio-cache-node",
        description="Serve an mtaio cache node (a Redis-protocol subset) until SIGINT/SIGTERM.",
        epilog=f"The password may also come from the {PASSWORD_ENV} environment variable.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    parser.add_argument("--node-id", default=None, help="name shown in INFO and logs")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument(
        "--password", default=None, help="require AUTH with this password (visible in ps)"
    )
    secret.add_argument(
        "--password-file", default=None, help="read the password from the first line of a file"
    )
    parser.add_argument("--max-items", type=int, default=1_000_000, help="most keys held")
    parser.add_argument(
        "--max-value-bytes", type=int, default=16 << 20, help="largest value accepted"
    )
    parser.add_argument(
        "--max-clients", type=int, default=None, help="connections (default: fits RLIMIT_NOFILE)"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=60.0,
        help="seconds to finish a request, authenticate or read replies (default 60)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def _password(args: argparse.Namespace) -> str | None:
    if args.password is not None:
        return str(args.password)
    if args.password_file is not None:
        with open(args.password_file, encoding="utf-8") as f:
            line = f.readline().rstrip("\r\n")
        if not line:
            raise ValueError(f"the password file {args.password_file} is empty")
        return line
    return os.environ.get(PASSWORD_ENV) or None


async def _serve(node: CacheNode) -> None:
    await node.start()
    host, port = node.address
    print(f"mtaio-cache-node {node.node_id} listening on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # pragma: no cover - Windows
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await node.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the node; returns the process exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        node = CacheNode(
            args.node_id or f"{args.host}:{args.port}",
            (args.host, args.port),
            password=_password(args),
            max_items=args.max_items,
            max_value_bytes=args.max_value_bytes,
            max_clients=args.max_clients,
            idle_timeout=args.idle_timeout,
        )
        asyncio.run(_serve(node))
    except Exception as exc:
        print(f"mtaio-cache-node: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
