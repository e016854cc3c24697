from __future__ import annotations

import subprocess
import sys

import pytest
import redis.asyncio as aioredis

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError, DependencyError
from mtaio.typing import connect_redis, redis_key


def test_a_url_gives_a_client_with_the_options() -> None:
    client = connect_redis("redis://127.0.0.1:1/0", extra="x[redis]", socket_timeout=0.5)
    assert isinstance(client, aioredis.Redis)
    assert client.connection_pool.connection_kwargs["socket_timeout"] == 0.5


def test_an_existing_client_is_returned_as_it_is() -> None:
    client = aioredis.Redis()
    assert connect_redis(client, extra="x[redis]") is client


@pytest.mark.parametrize("url", ["http://h:1", "localhost:6379", ""])
def test_other_schemes_are_refused_naming_the_argument(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^store must be a redis://"):
        connect_redis(url, extra="x[redis]", argument="store")


@pytest.mark.parametrize("target", [None, 5, object()])
def test_other_objects_are_refused_naming_the_argument(target: object) -> None:
    with pytest.raises(ConfigurationTypeError, match=r"^client must be a redis:// URL or"):
        connect_redis(target, extra="x[redis]", argument="client")


def test_without_redis_py_the_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(DependencyError, match=r"pip install 'mtaio-events\[redis\]'") as info:
        connect_redis("redis://h:1", extra="mtaio-events[redis]")
    assert isinstance(info.value, ImportError)


def test_importing_mtaio_typing_does_not_import_redis() -> None:
    code = "import sys, mtaio.typing, mtaio.testing; assert 'redis' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_keys_share_the_object_hash_tag() -> None:
    assert redis_key("mtaio", "payments") == "{mtaio:payments}"
    assert redis_key("p", "n", "a", "b") == "{p:n}:a:b"
