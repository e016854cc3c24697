"""The key table behind a CacheNode's ``SCAN``: stable slots, no copy per cursor.

Every key the node holds sits in one slot of a list until it leaves; a ``SCAN`` cursor is a
slot index. Keys never move while they are present (a freed slot is reused by a later key,
and only free slots at the end are trimmed), so walking the slots in order returns every key
present for the whole scan exactly once, Redis's guarantee, while a ``SCAN`` call looks at a
number of slots proportional to its ``COUNT`` and a cursor costs nothing to hold.

The table takes one list slot per key (8 bytes) plus a dict entry, and never grows beyond
the most keys the node held at once.
"""

from __future__ import annotations

from typing import final

__all__ = ("KeySlots",)


@final
class KeySlots:
    """Keys in stable positions, for cursor scans."""

    __slots__ = ("_free", "_slot_of", "_slots")

    def __init__(self) -> None:
        self._slots: list[bytes | None] = []
        self._slot_of: dict[bytes, int] = {}
        self._free: list[int] = []  # freed slots, reused before the table grows

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key: object) -> bool:
        return key in self._slot_of

    @property
    def size(self) -> int:
        """Slots in the table (cursors range over ``0..size``)."""
        return len(self._slots)

    def add(self, key: bytes) -> None:
        """Give ``key`` a slot, unless it has one."""
        slot_of = self._slot_of
        if key in slot_of:
            return
        slots = self._slots
        free = self._free
        while free:
            slot = free.pop()
            # Entries past a trim, or taken again since, are stale: skip them.
            if slot < len(slots) and slots[slot] is None:
                slots[slot] = key
                slot_of[key] = slot
                return
        slot_of[key] = len(slots)
        slots.append(key)

    def discard(self, key: bytes) -> None:
        """Free the slot of ``key``, if it has one."""
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return
        slots = self._slots
        slots[slot] = None
        if slot == len(slots) - 1:
            while slots and slots[-1] is None:
                slots.pop()
            if not slots:
                self._free.clear()
        else:
            self._free.append(slot)

    def clear(self) -> None:
        """Forget every key."""
        self._slots = []
        self._slot_of = {}
        self._free = []

    def scan(self, cursor: int, count: int) -> tuple[int, list[bytes]]:
        """Return the next cursor and the keys of at most ``count`` slots from ``cursor``.

        Empty slots count a tenth each (as Redis bounds its empty-bucket visits), so a
        call looks at no more than ``10 * count`` slots. The next cursor is 0 at the end.
        """
        slots = self._slots
        size = len(slots)
        keys: list[bytes] = []
        budget = 10 * count
        pos = cursor
        while pos < size and budget > 0 and len(keys) < count:
            key = slots[pos]
            pos += 1
            if key is None:
                budget -= 1
            else:
                keys.append(key)
                budget -= 10
        return (pos if pos < size else 0), keys
