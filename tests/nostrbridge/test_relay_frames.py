"""`parse_frame` (nostrbridge/relays/frames.py) on orjson with `json` behind it: the same value as
`json` for what both read, `json`'s value for what orjson refuses, and the frame checks' refusals."""

import json

import pytest

from nostrbridge.relays.frames import MalformedFrame, parse_frame

EVENT = {"id": "a" * 64, "pubkey": "b" * 64, "created_at": 1_765_000_000, "kind": 1059, "tags": [["p", "c" * 64]],
         "content": "x", "sig": "d" * 128}  # fmt: skip


def test_an_event_frame_reads_as_json_reads_it():
    frame = json.dumps(["EVENT", "sub", EVENT])
    assert parse_frame(frame) == json.loads(frame) == ["EVENT", "sub", EVENT]


def test_what_orjson_refuses_is_read_by_json():
    frame = json.dumps(["EVENT", "sub", {**EVENT, "content": "\ud800"}])  # a lone surrogate, escaped
    assert parse_frame(frame)[2]["content"] == "\ud800"


def test_a_created_at_beyond_64_bits_is_refused_as_mistyped():
    with pytest.raises(MalformedFrame, match="event field 'created_at' missing or mistyped"):
        parse_frame(json.dumps(["EVENT", "sub", {**EVENT, "created_at": 2**64}]))


def test_text_that_is_not_json_is_refused():
    with pytest.raises(MalformedFrame, match="not JSON"):
        parse_frame('["EVENT", "sub", {')
