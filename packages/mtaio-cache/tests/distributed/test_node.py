from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.exceptions import ResponseError

from mtaio.cache import CacheNode
from mtaio.cache._cli import _serve, main
from mtaio.exceptions import CacheError, ConfigurationError, ConfigurationTypeError
from mtaio.typing import ManualClock


async def raw_exchange(node: CacheNode, data: bytes, expect_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection(*node.address)
    try:
        writer.write(data)
        await writer.drain()
        if expect_close:
            return await asyncio.wait_for(reader.read(), 2.0)
        return await asyncio.wait_for(reader.read(4096), 2.0)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_binds_loopback_by_default_and_reports_its_port(node: CacheNode) -> None:
    assert node.address[0] == "127.0.0.1" and node.address[1] > 0
    assert node.serving and "serving" in repr(node)
    assert CacheNode().address == ("127.0.0.1", 0)


async def test_strings_commands(client: aioredis.Redis) -> None:
    assert await client.ping()
    assert await client.echo(b"hi") == b"hi"
    assert await client.set("k", b"v")
    assert await client.get("k") == b"v"
    assert await client.set("k", b"w", nx=True) is None
    assert await client.set("missing", b"w", xx=True) is None
    assert await client.set("k", b"w", xx=True, get=True) == b"v"
    assert await client.mget("k", "missing") == [b"w", None]
    assert await client.exists("k", "k", "missing") == 2
    assert await client.dbsize() == 1
    assert await client.delete("k", "missing") == 1
    assert await client.unlink("k") == 0
    assert await client.get("k") is None


async def test_expiry_commands(client: aioredis.Redis, clock: ManualClock) -> None:
    await client.set("a", b"1", px=1500)
    await client.set("b", b"2", ex=10)
    await client.set("c", b"3")
    assert await client.pttl("a") == 1500
    assert await client.ttl("b") == 10
    assert await client.pttl("c") == -1
    assert await client.pttl("nope") == -2
    assert await client.set("b", b"2b", keepttl=True)
    assert await client.ttl("b") == 10
    assert await client.pexpire("c", 3000)
    assert await client.expire("missing", 5) is False
    clock.advance(2.0)
    assert await client.get("a") is None
    assert await client.pttl("c") == 1000
    assert await client.expire("c", 0)  # a non-positive expiry deletes
    assert await client.get("c") is None
    assert await client.set("d", b"x", keepttl=True)
    assert await client.ttl("d") == -1


async def test_bad_arguments_get_error_replies(client: aioredis.Redis) -> None:
    for args, message in [
        (("SET", "k"), "wrong number"),
        (("SET", "k", "v", "EX", "x"), "not an integer"),
        (("SET", "k", "v", "EX", "0"), "invalid expire"),
        (("SET", "k", "v", "NX", "XX"), "syntax"),
        (("GET",), "wrong number"),
        (("MGET",), "wrong number"),
        (("DEL",), "wrong number"),
        (("EXISTS",), "wrong number"),
        (("PEXPIRE", "k"), "wrong number"),
        (("PEXPIRE", "k", "x"), "not an integer"),
        (("EXPIRE", "k"), "wrong number"),
        (("EXPIRE", "k", "x"), "not an integer"),
        (("PTTL",), "wrong number"),
        (("TTL",), "wrong number"),
        (("SCAN",), "wrong number"),
        (("SCAN", "x"), "invalid cursor"),
        (("SCAN", "0", "COUNT"), "syntax"),
        (("SCAN", "0", "COUNT", "0"), "syntax"),
        (("SCAN", "0", "FOO", "1"), "syntax"),
        (("SELECT", "1"), "out of range"),
        (("SELECT",), "wrong number"),
        (("PING", "a", "b"), "wrong number"),
        (("ECHO",), "wrong number"),
        (("AUTH",), "wrong number"),
        (("HELLO", "3"), "NOPROTO"),
        (("HELLO", "2", "BOGUS"), "syntax"),
        (("CLIENT", "KILL"), "unknown CLIENT"),
        (("NOSUCH", "x"), "unknown command 'NOSUCH'"),
    ]:
        with pytest.raises(ResponseError, match=message):
            await client.execute_command(*args)  # type: ignore[no-untyped-call]
    assert await client.ping()  # errors never cost the connection


async def test_auth_without_a_configured_password_is_an_error(node: CacheNode) -> None:
    reply = await raw_exchange(node, b"AUTH pw\r\nQUIT\r\n")
    assert reply.startswith(b"-ERR AUTH <password> called without any password configured")


async def test_client_commands_and_info(client: aioredis.Redis) -> None:
    assert await client.client_setname("me")
    assert await client.client_getname() in ("me", b"me")
    assert isinstance(await client.client_id(), int)
    assert await client.execute_command("CLIENT", "SETINFO", "LIB-NAME", "x")  # type: ignore[no-untyped-call]
    assert await client.execute_command("SELECT", "0")  # type: ignore[no-untyped-call]
    assert not await client.execute_command("COMMAND", "DOCS")  # type: ignore[no-untyped-call]
    hello = await client.execute_command("HELLO", "2", "SETNAME", "n2")  # type: ignore[no-untyped-call]
    assert hello[hello.index(b"proto") + 1] == 2
    await client.set("k", b"v")
    info = await client.info()
    assert info["redis_version"] == "7.0.0" and info["db0"]["keys"] == 1
    assert await client.flushdb()
    assert await client.dbsize() == 0


async def test_scan_with_match_and_count(client: aioredis.Redis) -> None:
    for i in range(25):
        await client.set(f"ns:{i}", b"x")
        await client.set(f"other:{i}", b"x")
    await client.set("n?:literal", b"x")
    seen: list[bytes] = []
    cursor = 0
    rounds = 0
    while True:
        cursor, keys = await client.scan(cursor, match="ns:*", count=7)
        seen += [k for k in keys if isinstance(k, bytes)]
        rounds += 1
        if cursor == 0:
            break
    assert sorted(seen) == sorted(f"ns:{i}".encode() for i in range(25))
    assert rounds == 8
    assert [k async for k in client.scan_iter(match=r"n\?:*")] == [b"n?:literal"]
    assert sorted([k async for k in client.scan_iter(match="ns:[12]")]) == [b"ns:1", b"ns:2"]
    assert len([k async for k in client.scan_iter(match="ns:[^1]", count=100)]) == 9


async def test_password_is_required_and_checked(clock: ManualClock) -> None:
    async with CacheNode("p", password="s3cret", clock=clock) as node:
        reply = await raw_exchange(
            node, b"GET k\r\nAUTH nope\r\nAUTH admin s3cret\r\nAUTH s3cret\r\nGET k\r\nQUIT\r\n"
        )
        assert reply == (
            b"-NOAUTH Authentication required.\r\n"
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
            b"+OK\r\n$-1\r\n+OK\r\n"
        )
        host, port = node.address
        good = aioredis.Redis(host=host, port=port, password="s3cret", protocol=2)
        try:
            assert await good.set("k", b"v")
        finally:
            await good.aclose()
        reply = await raw_exchange(
            node,
            b"HELLO 2 AUTH default nope\r\nHELLO 2 AUTH bob x\r\nHELLO 2\r\n"
            b"HELLO 2 AUTH default s3cret\r\nGET k\r\nQUIT\r\n",
        )
        assert reply.startswith(b"-WRONGPASS")
        assert reply.count(b"-WRONGPASS") == 2 and b"-NOAUTH HELLO" in reply
        assert reply.endswith(b"$1\r\nv\r\n+OK\r\n")


async def test_resp3_clients_fall_back(node: CacheNode) -> None:
    host, port = node.address
    c = aioredis.Redis(host=host, port=port, protocol=3)
    try:
        with pytest.raises(ResponseError, match="NOPROTO"):
            await c.ping()
    finally:
        await c.aclose()


async def test_malformed_input_gets_an_error_and_that_connection_closes(
    node: CacheNode, client: aioredis.Redis
) -> None:
    reply = await raw_exchange(node, b"PING\r\n*1\r\n$-5\r\nPING\r\n")
    assert reply.startswith(b"+PONG\r\n-ERR Protocol error: invalid bulk string length")
    reply = await raw_exchange(node, b"*2\r\n$3\r\nSET\r\n$99999999\r\n")
    assert b"-ERR Protocol error" in reply and b"exceeds the limit of 65536" in reply
    assert await client.ping()  # everyone else is still served


async def test_quit_closes_after_replying(node: CacheNode) -> None:
    assert await raw_exchange(node, b"QUIT\r\nPING\r\n") == b"+OK\r\n"


async def test_internal_errors_are_contained(
    node: CacheNode, client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setitem(node._handlers, b"DBSIZE", broken)
    with pytest.raises(ResponseError, match="internal error"):
        await client.dbsize()
    assert await client.ping()


async def test_max_clients_refuses_extra_connections(clock: ManualClock) -> None:
    async with CacheNode("m", max_clients=1, clock=clock) as node:
        reader, writer = await asyncio.open_connection(*node.address)
        writer.write(b"PING\r\n")
        assert await reader.readline() == b"+PONG\r\n"
        assert b"max number of clients" in await raw_exchange(node, b"")
        writer.close()
        await writer.wait_closed()
        assert node.stats().commands == 1


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.binary(min_size=1, max_size=400))
async def test_hostile_bytes_never_take_the_node_down(
    node: CacheNode, client: aioredis.Redis, data: bytes
) -> None:
    reader, writer = await asyncio.open_connection(*node.address)
    writer.write(data)
    writer.write_eof()
    await asyncio.wait_for(reader.read(), 2.0)
    writer.close()
    await writer.wait_closed()
    assert await client.ping()


async def test_stop_closes_every_client_and_start_stop_are_idempotent(clock: ManualClock) -> None:
    node = CacheNode("s", clock=clock)
    await node.stop()
    await node.start()
    await node.start()
    reader, writer = await asyncio.open_connection(*node.address)
    writer.write(b"PING\r\n")
    assert await reader.readline() == b"+PONG\r\n"
    await node.stop()
    assert await asyncio.wait_for(reader.read(), 2.0) == b""
    writer.close()
    await writer.wait_closed()
    assert not node.serving and "stopped" in repr(node)


async def test_serve_forever_stops_when_cancelled(clock: ManualClock) -> None:
    node = CacheNode("f", clock=clock)
    task = asyncio.create_task(node.serve_forever())
    for _ in range(50):
        if node.serving:
            break
        await asyncio.sleep(0.01)
    assert node.serving
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not node.serving


async def test_bad_configuration_is_refused(node: CacheNode) -> None:
    with pytest.raises(ConfigurationTypeError, match="node_id"):
        CacheNode(1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="address"):
        CacheNode("x", "localhost:5000")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="port"):
        CacheNode("x", ("127.0.0.1", 70000))
    with pytest.raises(ConfigurationTypeError, match="password"):
        CacheNode("x", password=b"pw")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_items"):
        CacheNode("x", max_items=0)
    busy = CacheNode("busy", node.address)
    with pytest.raises(CacheError, match="cannot listen"):
        await busy.start()


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
async def test_redis_cli_talks_to_the_node(node: CacheNode) -> None:
    host, port = node.address
    proc = await asyncio.create_subprocess_exec(
        "redis-cli",
        "-h",
        host,
        "-p",
        str(port),
        "SET",
        "greeting",
        "hello",
        stdout=subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert out.strip() == b"OK"
    proc = await asyncio.create_subprocess_exec(
        "redis-cli", "-h", host, "-p", str(port), "GET", "greeting", stdout=subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert out.strip() == b"hello"


async def test_cli_serves_until_stopped(free_port: Callable[[], int]) -> None:
    node = CacheNode("cli", ("127.0.0.1", free_port()))
    task = asyncio.create_task(_serve(node))
    for _ in range(100):
        if node.serving:
            break
        await asyncio.sleep(0.01)
    c = aioredis.Redis(host="127.0.0.1", port=node.address[1], protocol=2)
    try:
        assert await c.ping()
    finally:
        await c.aclose()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not node.serving


def test_cli_reports_a_busy_port(
    capsys: pytest.CaptureFixture[str], free_port: Callable[[], int]
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["--port", str(port), "--node-id", "x", "--log-level", "warning"]) == 1
    assert "cannot listen" in capsys.readouterr().err


def test_console_script_runs_a_node(free_port: Callable[[], int]) -> None:
    exe = shutil.which("mtaio-cache-node")
    if exe is None:
        pytest.skip("the console script is not installed in this environment")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"listening on 127.0.0.1:{port}".encode() in line
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            assert s.recv(16) == b"+PONG\r\n"
        proc.terminate()
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def test_a_cancelled_connection_handler_ends_quietly(
    node: CacheNode, caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer = await asyncio.open_connection(*node.address)
    writer.write(b"PING\r\n")
    assert await reader.readline() == b"+PONG\r\n"
    handlers = list(node._clients)
    for task in handlers:
        task.cancel()
    await asyncio.wait(handlers)
    assert await asyncio.wait_for(reader.read(), 2.0) == b""
    writer.close()
    await writer.wait_closed()
    assert node.stats().clients == 0
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
