"""The core's internal value classes (aim_core.values) and sha256 without OpenSSL."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aim_core import digest
from aim_core.plugins import PluginInfo
from aim_core.proctree import ToolTree
from aim_core.registry import Route
from aim_core.workstream import FileVerdict


def test_sha256_gives_hashlib_digests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 8192)  # 2 MiB: past the builtin's share, OpenSSL's
    small = tmp_path / "small"
    small.write_bytes(b"aim")
    for data in (b"", b"aim", bytes(range(256)) * 100):
        assert digest.sha256_hex(data) == hashlib.sha256(data).hexdigest()
    for path in (small, big, small):
        data = path.read_bytes()
        assert digest.file_sha256(path) == (len(data), hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(digest, "_left", [0, 0])  # OpenSSL's from now on: same digests
    assert digest.sha256_hex(b"aim") == hashlib.sha256(b"aim").hexdigest()


def test_frozen_value_compares_hashes_and_evolves() -> None:
    a = Route(primary="aider", fallback=("claude",))
    assert a == Route(primary="aider", fallback=("claude",))
    assert a != Route(primary="aider")
    assert hash(a) == hash(Route(primary="aider", fallback=("claude",)))
    b = a.evolve(primary="codex")
    assert (b.primary, b.fallback, a.primary) == ("codex", ("claude",), "aider")
    assert repr(a) == "Route(fallback=('claude',), primary='aider')"
    with pytest.raises(AttributeError, match="immutable"):
        a.primary = "codex"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Route("aider")  # type: ignore[misc]  # keyword-only, as the attrs class was


def test_fields_left_out_of_equality() -> None:
    assert ToolTree(pid=1, token="t", since=None, noted={(2, 1.0)}) == ToolTree(
        pid=1, token="t", since=None
    )
    v = FileVerdict(display="ws.json", workstream=None, path=None)
    assert v == v.evolve(path=None) and v.evolve(errors=("bad",)) != v


def test_mutable_value_changes_and_is_unhashable() -> None:
    info = PluginInfo(name="x")
    info.status = "broken"
    info.hooks.append("detect_tool")
    assert info == PluginInfo(name="x", status="broken", hooks=["detect_tool"])
    with pytest.raises(TypeError):
        hash(info)
