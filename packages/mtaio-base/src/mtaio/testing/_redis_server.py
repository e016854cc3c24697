""":class:`RedisServer`: a throwaway ``redis-server`` on a loopback port, and finding one."""

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

__all__ = ("RedisServer", "find_redis_server", "free_port", "require_redis_server")

#: Set to ``1`` (CI does) to turn the loud skip of :func:`require_redis_server` into a failure.
REQUIRE_REDIS_ENV = "MTAIO_REQUIRE_REDIS"


def find_redis_server() -> str | None:
    """Return the path of the ``redis-server`` binary on ``PATH``, or None."""
    return shutil.which("redis-server")


def require_redis_server() -> str:
    """Return the ``redis-server`` path, or skip the calling pytest test loudly.

    When the binary is missing the test is skipped with a reason nobody can miss, unless the
    environment sets ``MTAIO_REQUIRE_REDIS=1`` (CI does): then the test fails, so a machine
    without the server never passes for one that tested against it.

    Returns:
        The path of the binary.
    """
    import pytest

    found = find_redis_server()
    if found is None:
        reason = (
            "!!! redis-server is not installed: the tests against real Redis are SKIPPED. "
            "Install it (apt-get install redis-server) or set MTAIO_REQUIRE_REDIS=1 to fail."
        )
        if os.environ.get(REQUIRE_REDIS_ENV) == "1":
            pytest.fail(reason.replace("SKIPPED", "REQUIRED (MTAIO_REQUIRE_REDIS=1)"))
        pytest.skip(reason)
    return found


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
    def url(self) -> str:
        """``redis://host:port/0`` (with the password when one is set)."""
        auth = f":{self.password}@" if self.password is not None else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

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
