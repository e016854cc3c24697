r"""Redis glob patterns (``SCAN MATCH``, ``PSUBSCRIBE``), matched without backtracking.

The semantics are those of Redis's ``stringmatchlen`` (7.0), byte for byte: ``*`` (any run,
consecutive stars count as one), ``?`` (one byte), ``[abc]``, ``[^abc]``, ranges ``[a-z]``
(a reversed range ``[z-a]`` is the same range), ``\\`` escaping the next byte (inside a class
too), and Redis's quirks: ``[]`` matches nothing, an unterminated class ``[abc`` takes the
rest of the pattern as its members, a pattern never matches an empty string unless it is
empty itself, and a pattern with more than 1000 ``*`` groups before its end never matches
(Redis's guard against abusive patterns).

Redis explores the pattern recursively; a Python regex of it backtracks, and one 25-byte
pattern against a 60-byte key then runs for hours. Here nothing is ever retried. The pattern
is compiled once into fixed-length segments separated by stars; the first must match the
key's start and the last its end (a direct comparison each). What lies between is matched in
one pass over the key: literal segments with ``bytes.find``, each at its leftmost place (a
later place only leaves less room for the rest), and, when a ``?`` or a class sits between
two stars, by a bit-parallel automaton (shift-and: one bit per pattern token, a few integer
operations per key byte). The cost is linear in the key; patterns are capped at
:data:`MAX_PATTERN` bytes, so compiling one is cheap too.
"""

from __future__ import annotations

from typing import Final, final

__all__ = ("MAX_PATTERN", "GlobPattern", "pattern_error")

#: The longest glob accepted (Redis has no limit; keys this long are not keys either).
MAX_PATTERN: Final = 16 << 10

# Redis: `if (nesting > 1000) return 0;` -- each `*` followed by more pattern nests once.
_MAX_STAR_GROUPS: Final = 1000


def pattern_error(pattern: bytes) -> str | None:
    """The error text for a glob too long to compile, or None."""
    if len(pattern) > MAX_PATTERN:
        return f"ERR glob-style pattern longer than {MAX_PATTERN} bytes"
    return None


_STAR: Final = -1  # a token of the compiled pattern; other tokens are byte-class tables
_ANY: Final = b"\x01" * 256  # the table of `?` (one shared object)

# One atom of a segment: a literal run (bytes) or a 256-entry membership table of one byte
# (a class or `?`), each with its offset in the segment.
_Atom = tuple[int, bytes, bool]  # (offset, data, is_literal)


def _tokens(pattern: bytes) -> list[int | bytes]:
    """Split ``pattern`` into ``_STAR``, literal bytes (``int``) and class tables (``bytes``)."""
    out: list[int | bytes] = []
    n = len(pattern)
    i = 0
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # "*"
            if not out or out[-1] != _STAR:
                out.append(_STAR)
            i += 1
        elif c == 0x3F:  # "?"
            out.append(_ANY)
            i += 1
        elif c == 0x5B:  # "["
            table, i = _char_class(pattern, i + 1)
            out.append(table)
        elif c == 0x5C and i + 1 < n:  # "\" escapes the next byte; a final "\" is literal
            out.append(pattern[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return out


def _char_class(pattern: bytes, i: int) -> tuple[bytes, int]:
    """Parse a class body starting at ``i`` (after ``[``) exactly as Redis walks it.

    Returns the membership table and the index after the class.
    """
    n = len(pattern)
    table = bytearray(256)
    negate = i < n and pattern[i] == 0x5E  # "^"
    if negate:
        i += 1
    while True:
        left = n - i  # Redis's patternLen at this point
        if left >= 2 and pattern[i] == 0x5C:  # an escaped member
            i += 1
            table[pattern[i]] = 1
        elif left > 0 and pattern[i] == 0x5D:  # "]" ends the class
            i += 1
            break
        elif left <= 0:  # unterminated: the class ends with the pattern
            break
        elif left >= 3 and pattern[i + 1] == 0x2D:  # "a-z" (a reversed range is the same)
            lo, hi = sorted((pattern[i], pattern[i + 2]))
            table[lo : hi + 1] = b"\x01" * (hi - lo + 1)
            i += 2
        else:
            table[pattern[i]] = 1
        i += 1
    if negate:
        table = bytearray(1 - b for b in table)
    return bytes(table), i


def _segment(tokens: list[int | bytes]) -> tuple[int, tuple[_Atom, ...]]:
    """Turn the star-free ``tokens`` of one segment into atoms; returns (length, atoms)."""
    atoms: list[_Atom] = []
    run = bytearray()
    run_at = 0
    for offset, token in enumerate(tokens):
        if isinstance(token, int):
            if not run:
                run_at = offset
            run.append(token)
            continue
        if run:
            atoms.append((run_at, bytes(run), True))
            run.clear()
        atoms.append((offset, token, False))
    if run:
        atoms.append((run_at, bytes(run), True))
    return len(tokens), tuple(atoms)


@final
class GlobPattern:
    r"""A compiled Redis glob pattern.

    Example::

        GlobPattern(b"user:[0-9]*").match(b"user:42")   # True

    Args:
        pattern: The glob, as Redis takes it (bytes).
    """

    __slots__ = (
        "_accept",
        "_anchored",
        "_any",
        "_classes",
        "_first",
        "_last",
        "_literals",
        "_masks",
        "_middle",
        "_min_len",
        "_never",
        "_nfa",
        "_star",
        "_width",
        "pattern",
    )

    def __init__(self, pattern: bytes) -> None:
        self.pattern = pattern
        tokens = _tokens(pattern)
        segments: list[list[int | bytes]] = [[]]
        for token in tokens:
            if token == _STAR:
                segments.append([])
            else:
                segments[-1].append(token)
        compiled = [_segment(s) for s in segments]
        # A star followed by more pattern is one level of Redis's recursion.
        groups = len(segments) - 1 - (not segments[-1] and len(segments) > 1)
        self._never = groups > _MAX_STAR_GROUPS
        self._anchored = len(compiled) == 1  # no star: the key is exactly one segment
        self._first = compiled[0]
        self._last = compiled[-1]
        middle = compiled[1:-1]
        self._middle = tuple((length, atoms[0][1]) for length, atoms in middle)
        self._min_len = sum(length for length, _ in compiled)
        # Literal middle segments are found with bytes.find, in C and in one pass. Any `?`
        # or class between two stars is matched by a bit-parallel automaton instead.
        self._nfa = any(len(atoms) != 1 or not atoms[0][2] for _, atoms in middle)
        self._star = self._any = self._accept = self._width = 0
        self._literals: dict[int, list[int]] = {}
        self._classes: list[tuple[int, bytes]] = []
        self._masks: dict[int, int] = {}
        if self._nfa:
            self._compile_nfa(tokens)

    def _compile_nfa(self, tokens: list[int | bytes]) -> None:
        # State i: the first i non-star tokens matched. A star before token i lets state i
        # take any byte and stay; token i takes state i to i + 1 on a byte it matches.
        state = 0
        for token in tokens:
            if token == _STAR:
                self._star |= 1 << state
                continue
            if isinstance(token, int):
                self._literals.setdefault(token, []).append(state)
            elif token == _ANY:
                self._any |= 1 << (state + 1)
            else:
                self._classes.append((state, token))
            state += 1
        self._accept = 1 << state
        self._width = state + 1

    def _mask(self, byte: int) -> int:
        """States a token matching ``byte`` leads to (built on first use of each byte)."""
        bits = bytearray((self._width + 8) // 8)
        for state in self._literals.get(byte, ()):
            bits[(state + 1) >> 3] |= 1 << ((state + 1) & 7)
        for state, table in self._classes:
            if table[byte]:
                bits[(state + 1) >> 3] |= 1 << ((state + 1) & 7)
        mask = int.from_bytes(bits, "little") | self._any
        self._masks[byte] = mask
        return mask

    def __repr__(self) -> str:
        return f"GlobPattern({self.pattern!r})"

    def match(self, key: bytes) -> bool:
        """Tell whether ``key`` matches, as Redis's ``stringmatchlen`` would."""
        n = len(key)
        if not n:
            return not self.pattern
        if self._never or n < self._min_len:
            return False
        first_len, first = self._first
        if self._anchored:
            return n == first_len and _match_at(key, 0, first)
        if not _match_at(key, 0, first):
            return False
        last_len, last = self._last
        end = n - last_len  # the last segment sits at the very end
        if not _match_at(key, end, last):
            return False
        if self._nfa:
            return self._run(key)
        pos = first_len
        for length, literal in self._middle:
            found = key.find(literal, pos, end)
            if found < 0:
                return False
            pos = found + length
        return True

    def _run(self, key: bytes) -> bool:
        # One step per byte of the key, each a few operations on an int of one bit per
        # token: linear in the key, whatever the pattern.
        masks = self._masks
        star = self._star
        state = 1
        for byte in key:
            mask = masks.get(byte)
            if mask is None:
                mask = self._mask(byte)
            # The prefix matched already, so the first star's state never dies: no exit.
            state = ((state << 1) & mask) | (state & star)
        return bool(state & self._accept)


def _match_at(key: bytes, pos: int, atoms: tuple[_Atom, ...]) -> bool:
    for offset, data, literal in atoms:
        if literal:
            if not key.startswith(data, pos + offset):
                return False
        elif not data[key[pos + offset]]:
            return False
    return True
