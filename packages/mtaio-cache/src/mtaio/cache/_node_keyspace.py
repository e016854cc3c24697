"""A CacheNode's keyspace: its store, the SCAN slot table, and the key commands.

Argument parsing follows Redis 7.0 where a client can tell the difference: integers as
``string2ll`` reads them (no sign but ``-``, no spaces, no leading zeros, no ``_``, 64 bits),
expiries that would overflow Redis's millisecond clock refused, ``SET`` options repeated as
Redis allows them, ``EXPIRE`` with ``NX``/``XX``/``GT``/``LT``.
"""

from __future__ import annotations

import math
import re
import time
from typing import TYPE_CHECKING, Final, final

from mtaio.typing import Clock

from ._node_glob import GlobPattern, pattern_error
from ._node_scan import KeySlots
from ._resp import Reply, RespError
from ._ttl import TTLCache

if TYPE_CHECKING:
    from ._node_client import Client

__all__ = ("NOT_INT", "OK", "SYNTAX", "Keyspace", "arity", "parse_int")

OK: Final = "OK"
SYNTAX: Final = RespError("ERR syntax error")
NOT_INT: Final = RespError("ERR value is not an integer or out of range")

_LLONG_MAX: Final = (1 << 63) - 1
_LLONG_MIN: Final = -(1 << 63)
# string2ll's grammar; matched on at most 20 bytes, so a regex is safe here.
_INT: Final = re.compile(rb"-?[1-9][0-9]*|0")
_MAX_SCAN_COUNT: Final = 100_000


def arity(name: str) -> RespError:
    """The error Redis gives for a wrong number of arguments."""
    return RespError(f"ERR wrong number of arguments for '{name}' command")


def parse_int(raw: bytes) -> int | None:
    """Read a signed 64-bit integer as Redis's ``string2ll`` does, or None."""
    if len(raw) > 20 or _INT.fullmatch(raw) is None:
        return None
    value = int(raw)
    return value if _LLONG_MIN <= value <= _LLONG_MAX else None


def _now_ms() -> int:
    # Only to refuse expiries Redis would refuse (its clock is Unix milliseconds); expiry
    # itself runs on the node's monotonic clock.
    return time.time_ns() // 1_000_000


def _expire_error(command: str) -> RespError:
    return RespError(f"ERR invalid expire time in '{command}' command")


@final
class Keyspace:
    """The node's keys and the commands that read and write them.

    Args:
        max_items: The most keys held; the least recently used go first.
        clock: The storage's monotonic clock.
    """

    __slots__ = ("slots", "store")

    def __init__(self, max_items: int, clock: Clock) -> None:
        self.slots = KeySlots()
        # Keys leave the store on their own when they expire or make room: the SCAN table
        # hears it (a key set again meanwhile is live and keeps its slot).
        self.store: TTLCache[bytes] = TTLCache(
            default_ttl=None, max_size=max_items, clock=clock, on_evicted=self._forget
        )

    def _forget(self, key: object, value: object) -> None:
        if isinstance(key, bytes) and key not in self.store:
            self.slots.discard(key)

    async def get(self, client: Client, cmd: list[bytes]) -> Reply:
        if len(cmd) != 2:
            return arity("get")
        return await self.store.get(cmd[1])

    async def set(self, client: Client, cmd: list[bytes]) -> Reply:
        if len(cmd) < 3:
            return arity("set")
        key, value = cmd[1], cmd[2]
        nx = xx = get = keepttl = False
        unit = b""
        raw = b""
        i, n = 3, len(cmd)
        while i < n:
            opt = cmd[i].upper()
            if opt == b"NX" and not xx:
                nx = True
            elif opt == b"XX" and not nx:
                xx = True
            elif opt == b"GET":
                get = True
            elif opt == b"KEEPTTL" and not unit:
                keepttl = True
            elif (
                opt in (b"EX", b"PX", b"EXAT", b"PXAT")
                and not keepttl
                and unit in (b"", opt)  # Redis takes "EX 1 EX 2" (the last wins), not "EX 1 PX 2"
                and i + 1 < n
            ):
                unit = opt
                raw = cmd[i + 1]
                i += 1
            else:
                return SYNTAX
            i += 1
        ttl: float | None = None
        if unit:
            amount = parse_int(raw)
            if amount is None:
                return NOT_INT
            seconds = unit in (b"EX", b"EXAT")
            if amount <= 0 or (seconds and amount > _LLONG_MAX // 1000):
                return _expire_error("set")
            ms = amount * 1000 if seconds else amount
            now = _now_ms()
            if unit in (b"EX", b"PX"):
                if ms > _LLONG_MAX - now:
                    return _expire_error("set")
                ttl = ms / 1000
            else:
                ttl = (ms - now) / 1000
        store = self.store
        old = await store.get(key)
        if (nx and old is not None) or (xx and old is None):
            return old if get else None
        if keepttl and old is not None:
            left = await store.ttl(key)
            ttl = None if left is None or math.isinf(left) else left
        if ttl is not None and ttl <= 0:  # EXAT/PXAT in the past: set, and gone at once
            await self.delete_keys([key])
        else:
            self.slots.add(key)
            await store.set(key, value, ttl=ttl)
        return old if get else OK

    async def mget(self, client: Client, cmd: list[bytes]) -> Reply:
        if len(cmd) < 2:
            return arity("mget")
        get = self.store.get
        # References to the stored values, not copies: the connection streams them out.
        return [await get(k) for k in cmd[1:]]

    async def delete_keys(self, keys: list[bytes]) -> int:
        discard = self.slots.discard
        for key in keys:
            discard(key)
        return await self.store.delete_many(keys)

    async def delete(self, client: Client, cmd: list[bytes]) -> Reply:
        if len(cmd) < 2:
            return arity(cmd[0].decode(errors="replace").lower())
        return await self.delete_keys(cmd[1:])

    async def exists(self, client: Client, cmd: list[bytes]) -> Reply:
        if len(cmd) < 2:
            return arity("exists")
        has = self.store.has
        return sum([await has(k) for k in cmd[1:]])

    async def expire(self, client: Client, cmd: list[bytes]) -> Reply:
        """EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT, with NX/XX/GT/LT."""
        name = cmd[0].upper()
        command = name.decode().lower()
        if len(cmd) < 3:
            return arity(command)
        nx = xx = gt = lt = False
        for opt in cmd[3:]:
            word = opt.upper()
            if word == b"NX":
                nx = True
            elif word == b"XX":
                xx = True
            elif word == b"GT":
                gt = True
            elif word == b"LT":
                lt = True
            else:
                return RespError(f"ERR Unsupported option {opt.decode(errors='replace')}")
        if nx and (xx or gt or lt):
            return RespError("ERR NX and XX, GT or LT options at the same time are not compatible")
        if gt and lt:
            return RespError("ERR GT and LT options at the same time are not compatible")
        when = parse_int(cmd[2])
        if when is None:
            return NOT_INT
        seconds = name in (b"EXPIRE", b"EXPIREAT")
        if seconds:
            if not _LLONG_MIN // 1000 <= when <= _LLONG_MAX // 1000:
                return _expire_error(command)
            when *= 1000
        now = _now_ms()
        relative = name in (b"EXPIRE", b"PEXPIRE")
        base = now if relative else 0
        if when > _LLONG_MAX - base:
            return _expire_error(command)
        left_ms = when if relative else when - now  # from now, in milliseconds
        key = cmd[1]
        store = self.store
        current = await store.ttl(key)
        if current is None:
            return 0
        if nx or xx or gt or lt:
            persistent = math.isinf(current)
            current_ms = current * 1000
            if (nx and not persistent) or (xx and persistent):
                return 0
            if gt and (persistent or left_ms <= current_ms):
                return 0
            if lt and not persistent and left_ms >= current_ms:
                return 0
        if left_ms <= 0:
            await self.delete_keys([key])
            return 1
        return int(await store.touch(key, ttl=left_ms / 1000))

    async def persist(self, client: Client, cmd: list[bytes]) -> Reply:
        if len(cmd) != 2:
            return arity("persist")
        left = await self.store.ttl(cmd[1])
        if left is None or math.isinf(left):
            return 0
        return int(await self.store.touch(cmd[1], ttl=None))

    async def _remaining_ms(self, key: bytes) -> int | None:
        left = await self.store.ttl(key)
        if left is None:
            return None
        if math.isinf(left):
            return -1
        return max(0, round(left * 1000))

    async def pttl(self, client: Client, cmd: list[bytes]) -> Reply:
        if len(cmd) != 2:
            return arity("pttl")
        ms = await self._remaining_ms(cmd[1])
        return -2 if ms is None else ms

    async def ttl(self, client: Client, cmd: list[bytes]) -> Reply:
        if len(cmd) != 2:
            return arity("ttl")
        ms = await self._remaining_ms(cmd[1])
        if ms is None:
            return -2
        return -1 if ms < 0 else (ms + 500) // 1000  # Redis rounds half up

    async def scan(self, client: Client, cmd: list[bytes]) -> Reply:
        # The cursor is a slot of the key table (see _node_scan): a call costs O(COUNT).
        if len(cmd) < 2:
            return arity("scan")
        cursor = _cursor(cmd[1])
        if cursor is None:
            return RespError("ERR invalid cursor")
        count = 10
        match: GlobPattern | None = None
        i = 2
        while i < len(cmd):
            opt = cmd[i].upper()
            if i + 1 >= len(cmd):
                return SYNTAX
            if opt == b"COUNT":
                n = parse_int(cmd[i + 1])
                if n is None:
                    return NOT_INT
                if n < 1:
                    return SYNTAX
                count = min(n, _MAX_SCAN_COUNT)
            elif opt == b"MATCH":
                error = pattern_error(cmd[i + 1])
                if error is not None:
                    return RespError(error)
                # "*" alone skips matching (as in Redis: it also takes the empty key).
                match = None if cmd[i + 1] == b"*" else GlobPattern(cmd[i + 1])
            elif opt != b"TYPE":
                return SYNTAX
            i += 2
        nxt, keys = self.slots.scan(cursor, count)
        present = self.store.__contains__
        found: list[Reply] = [k for k in keys if present(k) and (match is None or match.match(k))]
        return [str(nxt).encode(), found]

    async def dbsize(self, client: Client, cmd: list[bytes]) -> Reply:
        return len(self.store)

    async def flushdb(self, client: Client, cmd: list[bytes]) -> Reply:
        self.slots.clear()
        await self.store.clear()
        return OK


def _cursor(raw: bytes) -> int | None:
    # Redis reads the cursor with strtoul: digits only here (any cursor past the table
    # simply ends the scan).
    if not raw or len(raw) > 20 or not raw.isdigit():
        return None
    return int(raw)
