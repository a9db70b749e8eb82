"""Markdown tables and PNG curves of transfer summaries."""

from __future__ import annotations

import math

import pytest

from common.transfer.report import init_order, markdown_table, plot_curves
from common.transfer.statistics import Summary


def _summaries() -> list[Summary]:
    return [
        Summary("seg", "random", 0.1, "dice", 3, 0.5, 0.05),
        Summary("seg", "random", 1.0, "dice", 3, 0.8, 0.01),
        Summary("seg", "rot/stage1", 0.1, "dice", 3, 0.6, 0.04, gain=0.1, p_value=0.01, significant=True),
        Summary("seg", "rot/stage1", 1.0, "dice", 3, 0.79, 0.02, gain=-0.01, p_value=0.5),
        Summary("seg", "rot/stage2", 0.1, "dice", 1, math.nan, math.nan),
    ]


def test_table_cells() -> None:
    table = markdown_table(_summaries(), "seg", "dice", "Dice", digits=2)
    lines = table.splitlines()
    assert lines[2] == "| initialisation | 10 % | 100 % |"
    assert lines[4] == "| random | 0.50 ± 0.05 | 0.80 ± 0.01 |"
    assert lines[5] == "| rot/stage1 | 0.60 ± 0.04 (+0.10, p=0.01, *) | 0.79 ± 0.02 (-0.01, p=0.50) |"
    assert lines[6] == "| rot/stage2 | n/a |  |"
    assert markdown_table(_summaries(), "cls", "auc") == ""


def test_random_comes_first() -> None:
    assert init_order(["b/stage2", "random", "a/stage1", "b/stage2"]) == ["random", "a/stage1", "b/stage2"]


def test_plot_is_a_png(tmp_path) -> None:
    path = plot_curves(_summaries(), "seg", "dice", tmp_path / "plots" / "seg_dice.png", "Dice", True)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no summary"):
        plot_curves(_summaries(), "seg", "auc", tmp_path / "x.png")
