"""The one check of a ``tags`` argument, for TTLCache and DistributedCache alike."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError

__all__ = ("MAX_TAG_BYTES", "MAX_TAGS", "check_tags")

# What one distributed entry may record (its envelope carries every tag's name and token).
MAX_TAGS: Final = 1024
MAX_TAG_BYTES: Final = 1024


def check_tags(tags: Iterable[str], *, bounded: bool = False) -> tuple[str, ...]:
    """``tags`` as a tuple without repeats; refuse a bare string and non-string tags.

    Args:
        tags: The ``tags`` argument.
        bounded: Also refuse an empty tag, a tag of more than ``MAX_TAG_BYTES`` bytes and
            more than ``MAX_TAGS`` tags (the limits of a tag recorded on the wire).

    Raises:
        ConfigurationTypeError: ``tags`` is a string or not iterable, or a tag is not a str.
        ConfigurationError: With ``bounded``, a tag or their number is out of bounds.
    """
    if isinstance(tags, (str, bytes)):
        raise ConfigurationTypeError(
            f"tags must be an iterable of strings such as a tuple, not one string, got {tags!r}"
        )
    try:
        names = tuple(dict.fromkeys(tags))
    except TypeError:
        raise ConfigurationTypeError(f"tags must be an iterable of strings, got {tags!r}") from None
    for tag in names:
        if not isinstance(tag, str):
            raise ConfigurationTypeError(f"each tag must be a str, got {tag!r}")
    if bounded:
        if len(names) > MAX_TAGS:
            raise ConfigurationError(f"tags may hold at most {MAX_TAGS} tags, got {len(names)}")
        for tag in names:
            if not tag or len(tag.encode()) > MAX_TAG_BYTES:
                raise ConfigurationError(
                    f"each tag must be a non-empty str of at most {MAX_TAG_BYTES} bytes, "
                    f"got {tag!r}"
                )
    return names
