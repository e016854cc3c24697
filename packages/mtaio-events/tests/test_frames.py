"""Frames: the header fast paths give exactly what a full JSON parse gives."""

from __future__ import annotations

import json

import pytest

from mtaio.events import JsonSerializer, MalformedMessageError
from mtaio.events._serializer import decode_json
from mtaio.events._transport import _parse_header, decode_frame, encode_frame, frame_head

PUBLISHER = "42-abcdef-123456"
KNOWN = frame_head("t", PUBLISHER)  # b'{"t":"t","p":"42-abcdef-123456","s":'


def _outcome(decode: object, raw: bytes) -> object:
    try:
        return decode(raw)  # type: ignore[operator]
    except MalformedMessageError:
        return MalformedMessageError


@pytest.mark.parametrize(
    "tail",
    [
        b"7}",
        b"0}",
        b"007}",  # JSON has no leading zeros
        b"-1}",
        b"1.5}",
        b"1e3}",
        b" 5}",
        b"5 }",
        b"5}}",
        b"\xd9\xa1}",  # an Arabic-Indic digit: not an ASCII digit
        b"1" * 25 + b"}",
        b'5,"m":{"k":"v"}}',
        b'5,"s":6}',
        b"}",
        b"5",
    ],
)
def test_a_known_header_prefix_decodes_as_a_full_parse_would(tail: bytes) -> None:
    decode_frame(encode_frame("t", None, PUBLISHER, 1, b"1"))  # the prefix is known now
    raw = KNOWN + tail + b"\n1"
    head, _, payload = raw.partition(b"\n")
    assert _outcome(decode_frame, raw) == _outcome(lambda r: _parse_header(head, payload), raw)


def test_a_prefix_carrying_metadata_is_never_taken_for_a_plain_header() -> None:
    # Metadata before the sequence number (our publishers write it after): the prefix
    # parses with metadata, so it is not remembered and every frame keeps its metadata.
    for seq in (1, 2):
        frame = decode_frame(b'{"t":"u","p":"x","m":{"a":1},"s":%d}\n1' % seq)
        assert (frame.metadata, frame.seq) == ({"a": 1}, seq)
    # a prefix that is no header with ',"s":0}' appended is not remembered either
    for seq in (1, 2):
        with pytest.raises(MalformedMessageError):
            decode_frame(b'{"t":7,"p":"x","s":%d}\n1' % seq)


@pytest.mark.parametrize("text", ['"x"', " 1 ", "\n[2]\n", '{"a":[1,{"b":null}]}', "NaN"])
def test_decode_json_is_json_loads(text: str) -> None:
    assert decode_json(text) == json.loads(text) or text == "NaN"


@pytest.mark.parametrize("text", ["", "[1] x", "1 2", "{", "'x'"])
def test_decode_json_refuses_what_json_loads_refuses(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        decode_json(text)


def test_the_json_serializer_reads_utf8_bytes_of_any_buffer_type() -> None:
    serializer = JsonSerializer[dict[str, str]]()
    data = serializer.dumps({"caf\u00e9": "\u2603"})
    assert data == '{"caf\u00e9":"\u2603"}'.encode()
    for buffer in (data, bytearray(data), memoryview(data)):
        assert serializer.loads(buffer) == {"caf\u00e9": "\u2603"}  # type: ignore[arg-type]
    with pytest.raises(UnicodeDecodeError):
        serializer.loads(b"\xff")
