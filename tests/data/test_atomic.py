"""atomic_output: the final file appears whole, or the old one stays."""

from __future__ import annotations

import pytest

from common.data import atomic


def test_atomic_output_replaces_on_success(tmp_path):
    dest = tmp_path / "sub" / "x.json"
    with atomic.atomic_output(dest) as tmp:
        assert tmp.name.startswith(atomic.PARTIAL_PREFIX) and tmp.name.endswith("x.json")
        tmp.write_text("new")
    assert dest.read_text() == "new" and [p.name for p in dest.parent.iterdir()] == ["x.json"]


def test_atomic_output_keeps_old_file_on_error(tmp_path):
    dest = tmp_path / "x.json"
    dest.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_output(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert dest.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.json"]
