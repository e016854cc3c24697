"""Reading an application's Prometheus endpoint for the live view (``--url``).

Nothing read from the socket is trusted: the body is capped, lines that do not parse are
skipped, and values that are not numbers are dropped.
"""

from __future__ import annotations

import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import final

#: The most bytes read from an endpoint per scrape.
MAX_BODY = 4 * 1024 * 1024

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?\s*$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_TYPE = re.compile(r"^#\s*TYPE\s+([a-zA-Z_:][a-zA-Z0-9_:]*)\s+(\w+)")

Labels = tuple[tuple[str, str], ...]


def check_url(text: str) -> str:
    """Return ``text`` if it is an ``http://`` or ``https://`` URL with a host.

    Raises:
        ValueError: Otherwise, with a message for people.
    """
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {text!r}")
    return text


@final
@dataclass(frozen=True, slots=True)
class Exposition:
    """One scrape: every sample by name and labels, and the declared metric types."""

    samples: dict[str, dict[Labels, float]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)

    def value(self, name: str) -> float | None:
        """Return the sum of a sample's values over its label sets (None if absent)."""
        series = self.samples.get(name)
        return None if not series else sum(series.values())


def parse(text: str) -> Exposition:
    """Parse the Prometheus text format, skipping what does not parse."""
    out = Exposition()
    for line in text.splitlines():
        if line.startswith("#"):
            match = _TYPE.match(line)
            if match:
                out.types[match.group(1)] = match.group(2)
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, _, raw_labels, raw_value = match.group(1, 2, 3, 4)
        try:
            value = float(raw_value)
        except ValueError:
            continue
        if math.isnan(value):
            continue
        labels = tuple(sorted(_LABEL.findall(raw_labels or "")))
        out.samples.setdefault(name, {})[labels] = value
    return out


def fetch(url: str, timeout: float = 2.0) -> Exposition:
    """Read and parse an endpoint (blocking; the view calls it in a thread).

    Raises:
        OSError: If the endpoint cannot be read (refused, timed out, an HTTP error).
    """
    request = urllib.request.Request(url, headers={"Accept": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_BODY)
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from None
    return parse(body.decode("utf-8", "replace"))


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the view's application section."""

    name: str
    text: str


def rows(expo: Exposition, namespace: str = "mtaio_", limit: int = 12) -> list[Row]:
    """Summarise an application's metrics for the view.

    The monitor's own figures, named ``<namespace>...``, are left out: the view shows its
    own system figures, and the request counters in its requests row.
    """
    out: list[Row] = []
    for name, kind in sorted(expo.types.items()):
        if name.startswith(namespace):
            continue
        if kind == "counter":
            v = expo.value(name + "_total")
            if v is None:
                v = expo.value(name)
            if v is not None:
                out.append(Row(name, f"{v:,.0f} total"))
        elif kind == "gauge":
            v = expo.value(name)
            if v is not None:
                out.append(Row(name, f"{v:,.2f}"))
        elif kind in ("histogram", "summary"):
            count, total = expo.value(name + "_count"), expo.value(name + "_sum")
            if count:
                mean = (total or 0.0) / count
                out.append(Row(name, f"{count:,.0f} observed, mean {mean:,.4g}"))
    return out[:limit]
