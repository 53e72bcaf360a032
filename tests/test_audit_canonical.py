"""The bytes an append seals (orjson's when they are canonical()'s, json's before a
process has sealed ORJSON_AFTER records) against canonical(), and the records they
make verify."""

from __future__ import annotations

import enum
import json
import math
import struct
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aim_core.audit.canonical import (
    ORJSON_AFTER,
    canonical,
    json_body,
    orjson_body,
    orjson_encoder,
    record_hash,
    seal_body,
)
from aim_core.audit.jsonl import JsonlAuditLog
from aim_core.audit.verify import verify

scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too: orjson refuses, json writes them
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()  # any code point but lone surrogates, control characters included
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=25,
)
records = st.dictionaries(st.text(max_size=12), values, max_size=12)


def _by_orjson(record):
    body = orjson_body(record, *orjson_encoder())
    return json_body(record) if body is None else body


WAYS = {"json": json_body, "orjson": _by_orjson, "seal_body": seal_body}


@pytest.fixture(params=list(WAYS))
def seal(request):
    return WAYS[request.param]


def test_a_record_as_aim_writes_it_is_encoded_by_orjson():
    """Else the orjson half of these tests tests json twice."""
    record = {"actor": "ci", "result": {"success": True, "duration_sec": 12.3}, "seq": 4}
    assert orjson_body(record, *orjson_encoder()) == canonical(record)


@pytest.mark.parametrize("way", ["json", "orjson"])
@settings(max_examples=400, deadline=None)
@given(record=records)
def test_the_sealed_bytes_are_canonicals(way, record):
    assert WAYS[way](record) == canonical(record)


def _float(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


@settings(max_examples=600, deadline=None)
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_every_finite_float_is_written_as_json_writes_it(bits):
    x = _float(bits)
    if not math.isfinite(x):
        return
    assert _by_orjson({"v": x, "w": [x / 7, -x]}) == canonical({"v": x, "w": [x / 7, -x]})


@pytest.mark.parametrize(
    "x",
    [1e-05, 3e-05, 9.999e-05, 0.0001, 1.2e-07, -2.5e-300, 5e-324, 1e16, 1.5e300, -0.0, 0.0],
)
def test_the_floats_whose_spelling_differs_take_jsons_way(seal, x):
    assert seal({"cost_usd": x}) == canonical({"cost_usd": x})


@pytest.mark.parametrize(
    "value",
    [
        {1: "int key"},
        {"big": 2**64},
        {"big": -(2**63) - 1},
        {"nested": [{"deep": 10**40}]},
    ],
)
def test_what_orjson_refuses_json_writes(seal, value):
    assert seal(value) == canonical(value)


class Colour(enum.IntEnum):
    RED = 1


class Name(str, enum.Enum):
    AIDER = "aider"


@pytest.mark.parametrize(
    "value", [{"c": Colour.RED}, {"n": Name.AIDER}, {"s": type("S", (str,), {})("x")}]
)
def test_subclasses_are_written_as_json_writes_them(seal, value):
    assert seal(value) == canonical(value)


def test_what_json_cannot_write_is_refused_as_before(seal):
    with pytest.raises(TypeError):
        canonical({"when": datetime.now(timezone.utc)})
    with pytest.raises(TypeError):
        seal({"when": datetime.now(timezone.utc)})
    with pytest.raises(TypeError):
        seal({"set": {1, 2}})


@pytest.mark.parametrize("x", [math.nan, math.inf, -math.inf])
def test_a_number_json_has_not_is_sealed_as_null_and_verifies(seal, x):
    body = seal({"cost_usd": x, "seq": 1, "n": [{"x": x}, 1.5]})
    assert body == b'{"cost_usd":null,"n":[{"x":null},1.5],"seq":1}'
    # what verification computes: the canonical JSON of the parsed line
    assert canonical(json.loads(body)) == body


def test_records_with_every_kind_of_value_verify(tmp_path):
    log = JsonlAuditLog(tmp_path / "AIM_audit")
    odd = [
        {"cost_usd": 3e-05, "tokens": 12},
        {"cost_usd": math.nan, "note": "0.00001 and 3e-7 in a string"},
        {"text": '\u2028\x00\x1f\x7f\u202e\U0001f600 é "quoted" \\ back'},
        {"big": 2**70, "small": -(2**63)},
        {1: "int key"},
        {"list": [1.5, None, True, {"z": 1, "a": [0.1, 1e22]}]},
    ]
    sealed = [log.append({"actor": "t", "extra": extra}) for extra in odd]
    result = verify(tmp_path / "AIM_audit")
    assert result.ok and result.records == len(odd)
    lines = [
        json.loads(line)
        for day in sorted((tmp_path / "AIM_audit").glob("*/audit.jsonl"))
        for line in day.read_bytes().split(b"\n")
        if line
    ]
    assert [line["hash"] for line in lines] == [s["hash"] for s in sealed]
    assert all(record_hash(line) == line["hash"] for line in lines)


def test_a_process_loads_orjson_only_once_it_has_sealed_enough_records(tmp_path):
    """`aim run` by itself seals one to a few records: loading orjson (3-5 ms) would
    cost more than it saves. The records before and after the switch chain."""
    code = (
        "import sys\n"
        "from aim_core.audit.jsonl import JsonlAuditLog\n"
        "log = JsonlAuditLog(sys.argv[1])\n"
        "seen = []\n"
        "for i in range(int(sys.argv[2])):\n"
        "    log.append({'actor': 'x', 'cost_usd': float('nan'), 'n': i})\n"
        "    seen.append('orjson' in sys.modules)\n"
        "print(seen.index(True) if True in seen else -1)\n"
    )
    audit = tmp_path / "AIM_audit"
    done = subprocess.run(
        [sys.executable, "-c", code, str(audit), str(ORJSON_AFTER + 3)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == ORJSON_AFTER - 1  # loaded for the ORJSON_AFTER-th record
    v = verify(audit)
    assert v.ok and v.records == ORJSON_AFTER + 3
    raw = b"".join(p.read_bytes() for p in sorted(audit.glob("*/audit.jsonl")))
    assert raw.count(b'"cost_usd":null') == ORJSON_AFTER + 3  # the same bytes either way
