"""MetricsServer: a tiny HTTP endpoint for the Prometheus text format, on the event loop.

It serves whatever collectors it is given (a monitor's, a registry's), so it knows nothing
of the monitor: the monitor hands it hooks to refresh its figures before a scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Self, final

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError, require_non_negative_int

from ._log import logger
from ._metrics import MetricsRegistry
from ._prometheus import RegistryCollector, _import_prometheus

_MAX_REQUEST = 16 * 1024
_READ_TIMEOUT = 10.0
_MAX_PORT = 65535


@final
class MetricsServer:
    """A tiny HTTP endpoint serving the Prometheus text format at ``/metrics`` (and ``/``).

    It runs on the event loop: no thread. Requests larger than 16 KiB or slower than 10 s
    are dropped. Get one from :meth:`ResourceMonitor.serve_metrics` (it closes with the
    monitor) or :func:`serve_registry` (a registry alone).

    Args:
        collectors: prometheus_client collectors to expose.
        host: Address to bind; loopback by default.
        port: TCP port; 0 picks a free one.
        prepare: Awaited before each scrape (refresh figures).
        finish: Called after each scrape.
        on_close: Called with the server once it closed.
    """

    def __init__(
        self,
        collectors: Iterable[Any],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        prepare: Callable[[], Awaitable[None]] | None = None,
        finish: Callable[[], None] | None = None,
        on_close: Callable[[MetricsServer], None] | None = None,
    ) -> None:
        given: object = host  # checked at run time: untyped callers pass anything
        if not isinstance(given, str) or not given:
            raise ConfigurationTypeError(f"host must be a non-empty string, got {host!r}")
        self._port = require_non_negative_int("port", port)
        if port > _MAX_PORT:
            raise ConfigurationError(f"port must be at most {_MAX_PORT}, got {port!r}")
        self._pc = _import_prometheus()
        self.host = host
        self._registry = self._pc.CollectorRegistry(auto_describe=False)
        for collector in collectors:
            self._registry.register(collector)
        self._prepare = prepare
        self._finish = finish
        self._on_close = on_close
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked)."""
        return self._port

    @property
    def url(self) -> str:
        """The scrape URL, ``http://host:port/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}/metrics"

    async def start(self) -> None:
        """Bind and start serving."""
        self._server = await asyncio.start_server(
            self._handle, self.host, self._port, limit=_MAX_REQUEST
        )
        self._port = self._server.sockets[0].getsockname()[1]
        logger.info("serving Prometheus metrics on %s", self.url)

    async def render(self) -> bytes:
        """Return the exposition text (what a scrape receives)."""
        if self._prepare is not None:
            await self._prepare()
        try:
            out: bytes = self._pc.generate_latest(self._registry)
        finally:
            if self._finish is not None:
                self._finish()
        return out

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            parts = head.split(b"\r\n", 1)[0].split()
            method = parts[0] if parts else b""
            path = parts[1].split(b"?", 1)[0] if len(parts) > 1 else b""
            if method not in (b"GET", b"HEAD"):
                status, body, ctype = (
                    "405 Method Not Allowed",
                    b"method not allowed\n",
                    "text/plain",
                )
            elif path not in (b"/", b"/metrics"):
                status, body, ctype = "404 Not Found", b"not found\n", "text/plain"
            else:
                try:
                    status, body, ctype = (
                        "200 OK",
                        await self.render(),
                        self._pc.CONTENT_TYPE_LATEST,
                    )
                except Exception:
                    logger.exception("rendering the metrics failed")
                    status, body, ctype = "500 Internal Server Error", b"error\n", "text/plain"
            header = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode("latin-1")
            writer.write(header if method == b"HEAD" else header + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self) -> None:
        """Stop listening and drop open connections (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.wait_closed()
        if self._on_close is not None:
            self._on_close(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def serve_registry(
    registry: MetricsRegistry, port: int = 0, host: str = "127.0.0.1"
) -> MetricsServer:
    """Serve a :class:`MetricsRegistry` alone over HTTP (no :class:`ResourceMonitor`).

    Close it with ``await server.close()`` or ``async with``.

    Args:
        registry: The metrics (and registered stats sources) to expose.
        port: TCP port; 0 picks a free one (read it from ``server.port``).
        host: Address to bind; loopback by default.

    Returns:
        The running :class:`MetricsServer`.

    Raises:
        MissingDependencyError: If prometheus_client is not installed.
    """
    server = MetricsServer([RegistryCollector(registry)], host=host, port=port)
    await server.start()
    return server
