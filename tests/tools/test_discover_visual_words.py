"""tools/discover_visual_words.py: writes the dataset, summary and montage; refuses too few volumes in one line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from common.data import write_phantom_dataset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "discover_visual_words.py")


def _tool():
    spec = importlib.util.spec_from_file_location("discover_visual_words", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> str:
    return write_phantom_dataset(str(tmp_path_factory.mktemp("phantoms")), num_volumes=3, shape=(48, 48, 40))


def test_the_tool_writes_the_bundles_dataset_next_to_the_source(phantoms: str) -> None:
    tool = _tool()
    assert tool.as_list("smoke,x.yaml") == ["smoke", "x.yaml"] and tool.as_list(None) == []
    written = tool.main(os.path.join(REPO, "bundles", "transvw"), "smoke", phantoms, progress=False, montage_classes=2)
    folder = os.path.dirname(phantoms)
    assert written["datalist"] == os.path.join(folder, "visual_words_smoke.json")  # the smoke overlay's file name
    assert {os.path.basename(p) for p in written.values()} == {
        "visual_words_smoke.json", "visual_words_smoke_summary.json", "visual_words_smoke_montage.png",
        "visual_words_smoke_autoencoder.pt",
    }  # fmt: skip
    data = json.load(open(written["datalist"]))
    assert data["visual_words_info"]["num_classes"] == 4 and len(data["visual_words"]) == 2


def test_too_few_volumes_stop_the_tool_with_both_numbers_and_no_traceback(phantoms: str) -> None:
    cmd = [sys.executable, TOOL, "bundles/transvw", "--overlays", "smoke", "--source_datalist", phantoms,
           "--discovery_num_neighbours", "9", "--progress", "False"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    assert proc.returncode == 1
    assert "needs 9 training volumes" in proc.stderr and "has 2 under 'unlabeled'" in proc.stderr
    assert "Traceback" not in proc.stderr
