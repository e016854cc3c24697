"""The enums of the local cache: eviction policies and the reasons an entry leaves."""

from __future__ import annotations

import enum

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError

__all__ = ("EvictionPolicy", "EvictionReason")


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
