"""Eviction in the local cache: the policies, the reasons an entry leaves, and O(1) LFU.

LRU and FIFO need no structure of their own: the cache keeps an ``OrderedDict`` whose C
linked list gives O(1) ``move_to_end`` (LRU recency) and ``popitem(last=False)`` (the
victim). LFU keeps a plain ``dict`` and a doubly linked list of frequency nodes, each
holding a circular list of its entries (the O(1) LFU of Shah, Mitra and Matani, 2010);
its functions are here.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from typing import Any

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError

from ._wheel import Entry

__all__ = (
    "EvictionPolicy",
    "EvictionReason",
    "FreqNode",
    "LFUEntry",
    "lfu_bump",
    "lfu_insert",
    "lfu_keys",
    "lfu_remove",
)


class EvictionPolicy(enum.StrEnum):
    """Which entry a full :class:`~mtaio.cache.TTLCache` drops to make room.

    Every policy is O(1) per operation.

    Attributes:
        LRU: Least recently used: reads, overwrites and ``touch`` refresh an entry's recency.
        LFU: Least frequently used: each read, overwrite or ``touch`` counts one use; ties
            are broken by recency (the least recently used of the least used goes first).
        FIFO: First in, first out: insertion order; reads and overwrites do not reorder.
    """

    LRU = "lru"
    LFU = "lfu"
    FIFO = "fifo"

    @classmethod
    def parse(cls, value: EvictionPolicy | str) -> EvictionPolicy:
        """Turn a policy or its name (any case) into an :class:`EvictionPolicy`.

        Args:
            value: An :class:`EvictionPolicy`, or one of ``"lru"``, ``"lfu"``, ``"fifo"``.

        Returns:
            The policy.

        Raises:
            ConfigurationTypeError: If ``value`` is neither a policy nor a string.
            ConfigurationError: If ``value`` names no policy.
        """
        if isinstance(value, cls):
            return value
        if not isinstance(value, str):
            raise ConfigurationTypeError(
                f"eviction_policy must be an EvictionPolicy or one of 'lru', 'lfu', 'fifo', "
                f"got {value!r}"
            )
        try:
            return cls(value.lower())
        except ValueError:
            raise ConfigurationError(
                f"eviction_policy must be one of 'lru', 'lfu', 'fifo', got {value!r}"
            ) from None


class EvictionReason(enum.StrEnum):
    """Why an entry left a :class:`~mtaio.cache.TTLCache`, as told to eviction listeners.

    Attributes:
        EXPIRED: Its time to live ran out (purged lazily, by the cleanup, or as a victim).
        CAPACITY: The cache was full and the policy chose it to make room.
        DELETED: ``delete``/``delete_many`` (or a transaction) removed it.
        REPLACED: A ``set`` stored a new value under its key; the listener gets the old one.
        CLEARED: ``clear()`` emptied the cache.
    """

    EXPIRED = "expired"
    CAPACITY = "capacity"
    DELETED = "deleted"
    REPLACED = "replaced"
    CLEARED = "cleared"


class LFUEntry(Entry):
    """An entry of an LFU cache: also linked into its frequency node's list."""

    __slots__ = ("next", "node", "prev")

    def __init__(self, key: Hashable, value: Any, expires: float | None) -> None:
        super().__init__(key, value, expires)
        self.node: Any = None
        self.prev: Any = None
        self.next: Any = None


class FreqNode:
    """The entries used exactly ``freq`` times, least recently used first.

    The root node (``freq`` 0) closes the circular list of nodes; its ``next`` holds the
    least used entries, whose head's ``next`` is the LFU victim.
    """

    __slots__ = ("freq", "head", "next", "prev")

    def __init__(self, freq: int) -> None:
        self.freq = freq
        head = LFUEntry(None, None, None)
        head.prev = head.next = head
        self.head = head
        self.prev: Any = self
        self.next: Any = self


def lfu_insert(root: FreqNode, entry: LFUEntry) -> None:
    """Link a new entry as used once."""
    node = root.next
    if node.freq != 1:
        node = FreqNode(1)
        node.prev = root
        node.next = root.next
        root.next.prev = node
        root.next = node
    _append(node, entry)


def _append(node: FreqNode, entry: LFUEntry) -> None:
    head = node.head
    last = head.prev
    last.next = entry
    entry.prev = last
    entry.next = head
    head.prev = entry
    entry.node = node


def lfu_bump(entry: LFUEntry) -> None:
    """Count one more use of ``entry``: move it to the next frequency's tail."""
    node = entry.node
    nxt = node.next
    freq = node.freq + 1
    if nxt.freq != freq:  # the root has freq 0, never equal
        new = FreqNode(freq)
        new.prev = node
        new.next = nxt
        nxt.prev = new
        node.next = new
        nxt = new
    lfu_remove(entry)
    _append(nxt, entry)


def lfu_remove(entry: LFUEntry) -> None:
    """Unlink ``entry``, and its frequency node if it empties."""
    prev = entry.prev
    nxt = entry.next
    prev.next = nxt
    nxt.prev = prev
    entry.prev = entry.next = None
    node = entry.node
    entry.node = None
    if node.head.next is node.head:  # the node is empty: unlink it
        node.prev.next = node.next
        node.next.prev = node.prev


def lfu_keys(root: FreqNode) -> list[Hashable]:
    """The keys, least used first (ties: least recently used first)."""
    keys: list[Hashable] = []
    node = root.next
    while node is not root:
        head = node.head
        entry = head.next
        while entry is not head:
            keys.append(entry.key)
            entry = entry.next
        node = node.next
    return keys
