"""Helpers for testing code that uses a real Redis or Valkey server.

:class:`RedisServer` runs a throwaway ``redis-server`` on a loopback port, without persistence,
for as long as a test needs it: start it, point a :class:`~mtaio.cache.DistributedCache` at its
``address``, then kill it, pause it (``SIGSTOP``, a server that stops answering) or restart it to
test failure handling. mtaio's own contract and fault tests run on it.

Example::

    from mtaio.cache import DistributedCache
    from mtaio.cache.testing import RedisServer

    with RedisServer() as server:          # a free loopback port
        cache = DistributedCache([server.address], replication_factor=1)
        ...
        server.pause()                     # now it stops answering: timeouts
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from types import TracebackType
from typing import Self, final

from mtaio.exceptions import CacheConnectionError, require_positive

__all__ = ("RedisServer", "find_redis_server", "free_port")


def find_redis_server() -> str | None:
    """Return the path of the ``redis-server`` binary on ``PATH``, or None."""
    return shutil.which("redis-server")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@final
class RedisServer:
    """One ``redis-server`` process on a loopback port.

    Args:
        port: The port to listen on; a free one when None.
        host: The address to bind, loopback by default.
        binary: The ``redis-server`` executable; found on ``PATH`` when None.
        password: Require this password (``requirepass``) when given.

    Raises:
        FileNotFoundError: If no ``redis-server`` binary can be found.

    .. versionadded:: 0.1
    """

    __slots__ = ("_proc", "binary", "host", "password", "port")

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        binary: str | None = None,
        password: str | None = None,
    ) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.binary = found
        self.host = host
        self.port = free_port(host) if port is None else port
        self.password = password
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, as :class:`~mtaio.cache.DistributedCache` takes it."""
        return (self.host, self.port)

    @property
    def running(self) -> bool:
        """Whether the process is alive (a paused one counts as running)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 5.0) -> None:
        """Start the server and wait until it answers ``PING``.

        Raises:
            CacheConnectionError: If it exits or does not answer within ``timeout`` seconds.
        """
        require_positive("timeout", timeout)
        if self.running:
            return
        args = [self.binary, "--port", str(self.port), "--bind", self.host]
        args += ["--save", "", "--appendonly", "no"]
        if self.password is not None:
            args += ["--requirepass", self.password]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._wait_answering(time.monotonic() + timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_answering(self, deadline: float) -> None:
        # An AUTH-protected server answers PING with -NOAUTH: that still proves it is up.
        while True:
            try:
                with socket.create_connection(self.address, timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16)[:1] in (b"+", b"-"):
                        return
            except OSError:
                pass
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise CacheConnectionError(
                    f"redis-server on port {self.port} exited with {self._proc.returncode}"
                )
            if time.monotonic() > deadline:
                raise CacheConnectionError(f"redis-server on port {self.port} did not answer")
            time.sleep(0.01)

    def kill(self) -> None:
        """Kill the process at once (as a crash would) and reap it; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)  # a paused process would not die before its reap
        proc.kill()
        proc.wait()

    stop = kill

    def pause(self) -> None:
        """Freeze the process (``SIGSTOP``): connections stay open, nothing answers."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused process run again (``SIGCONT``)."""
        self._signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is None:
            raise CacheConnectionError(f"redis-server on port {self.port} is not running")
        os.kill(self._proc.pid, sig)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"RedisServer({self.host}:{self.port}, {state})"
