r"""Tags for a DistributedCache: versioned tags, invalidated in O(1) round trips.

Why versioned tags: the engines this cache runs on include CacheNode, whose command set is
small (no sets, no scripts), and deleting a tag's members one by one costs a round trip per
member batch, a million for a big tag. Instead:

* each tag has a *token* key (``<namespace>:\xfftag:<tag>``) holding 16 random bytes, stored
  in an envelope and replicated like any value (so quorums, read gating, repair and resync
  apply to it);
* a tagged value's envelope records the token of each of its tags at write time; a tag
  without a token gets one then;
* a read of a tagged value reads its tags' tokens (one round trip per node, pipelined) and
  treats any mismatch, or a missing token, as a miss;
* ``invalidate_tags`` writes a fresh token per tag: one round trip, whatever the number of
  members. The invalidated values stay on the nodes until their TTL (give tagged values
  one) or ``clear()``; they can never be read again.

A missing token never validates anything, so an evicted or lost token key makes its values
misses, never stale hits. The byte ``\xff`` never occurs in UTF-8, so no user key can
collide with a token key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Final

from ._envelope import KIND_TAGGED, KIND_VALUE, TOKEN_SIZE, Envelope, pack_tags
from ._recovery import Recovery
from ._replicas import MISSING
from ._tag_names import check_tags as check_tag_names

__all__ = ("Tagging", "check_tags")

TAG_SPACE: Final = b"\xfftag:"


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """``tags`` as a tuple without repeats, within the limits of a tag on the wire."""
    return check_tag_names(tags, bounded=True)


class Tagging(Recovery):
    """Adds tag tokens to the replicas: what a tagged write records, what a read checks."""

    __slots__ = ()

    def _tag_key(self, tag: str) -> bytes:
        return self._prefix + TAG_SPACE + tag.encode()

    async def _tag_section(self, names: tuple[str, ...]) -> bytes:
        """The packed tag section of a write tagged ``names``; creates missing tokens."""
        rkeys = [self._tag_key(t) for t in names]
        found = await self._read_many(rkeys, decode=False)
        tokens: list[tuple[str, bytes]] = []
        create: list[tuple[bytes, bytes, int]] = []
        for name, rk, (_, token) in zip(names, rkeys, found, strict=True):
            if token is MISSING or len(token) != TOKEN_SIZE:
                token = os.urandom(TOKEN_SIZE)
                create.append((rk, self._encode(rk, KIND_VALUE, None, 0, encoded=token), 0))
            tokens.append((name, token))
        if create:
            await self._write_all(create)
        return pack_tags(tokens)

    async def _current(self, envs: list[Envelope]) -> list[bool]:
        """Whether each tagged envelope's recorded tokens are all still the tags' tokens."""
        names = list(dict.fromkeys(tag for env in envs for tag, _ in env.tags))
        found = await self._read_many([self._tag_key(t) for t in names], decode=False)
        tokens: dict[str, Any] = {t: token for t, (_, token) in zip(names, found, strict=True)}
        return [all(tokens[tag] == token for tag, token in env.tags) for env in envs]

    async def _live_value(self, env: Envelope | None, value: Any) -> Any:
        """``value``, or ``MISSING`` when it is tagged and a tag was invalidated since."""
        if value is MISSING or env is None or not env.tags:
            return value
        return value if (await self._current([env]))[0] else MISSING

    async def _invalidate(self, names: tuple[str, ...]) -> None:
        prepared = []
        for tag in names:
            rk = self._tag_key(tag)
            token = os.urandom(TOKEN_SIZE)
            prepared.append((rk, self._encode(rk, KIND_VALUE, None, 0, encoded=token), 0))
        await self._write_all(prepared)


def tagged_kind(section: bytes) -> int:
    """The envelope kind of a value written with the tag ``section`` (empty: untagged)."""
    return KIND_TAGGED if section else KIND_VALUE
