"""tools/generate_bundles.py: the committed bundle configs are current, and the merge does what it documents."""

from __future__ import annotations

import json
import os
import sys

import pytest
import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))

import generate_bundles as gen  # noqa: E402

TEMPLATE = """\
imports:
  - $import os
# ------------------------------------------------------------------------------------------ data
roi_size: [64, 64, 64]            # cube size
# the batch
batch_size: 4

# ------------------------------------------------------------------------------------------ proxy task

# ------------------------------------------------------------------------------------------ components
task: null
run_settings: generated
"""


@pytest.mark.parametrize("bundle", gen.method_bundles())
def test_committed_configs_are_what_the_generator_writes(bundle: str) -> None:
    assert gen.outdated(bundle) == [], "run `python tools/generate_bundles.py` and commit the result"


def test_every_method_bundle_is_generated() -> None:
    bundles = {d for d in os.listdir(gen.BUNDLES_DIR) if os.path.isdir(os.path.join(gen.BUNDLES_DIR, d))}
    assert {b for b in bundles if not b.startswith("transfer_")} <= set(gen.method_bundles())


def test_replacing_an_id_keeps_the_template_comment_unless_the_method_gives_one() -> None:
    merged = gen.merge_yaml(TEMPLATE, "batch_size: 2\nroi_size: [32, 32, 32]  # small\n", "test")
    assert "# the batch\nbatch_size: 2\n" in merged
    assert "roi_size: [32, 32, 32]  # small\n" in merged and "[64, 64, 64]" not in merged
    merged = gen.merge_yaml(TEMPLATE, "# two volumes\nbatch_size: 2\n", "test")
    assert "# two volumes\nbatch_size: 2\n" in merged and "# the batch" not in merged


def test_new_ids_go_to_the_end_of_their_section() -> None:
    part = "# ---- proxy task\nnum_classes: 8\ngroup: d4\n# ---- data\nnum_samples: 2\n"
    merged = gen.merge_yaml(TEMPLATE, part, "test")
    keys = [b.key for b in gen.parse_blocks(merged) if b.key]
    assert keys == ["imports", "roi_size", "batch_size", "num_samples", "num_classes", "group", "task", "run_settings"]
    assert yaml.safe_load(merged)["num_classes"] == 8


def test_an_unknown_section_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'optimiser'.*sections"):
        gen.merge_yaml(TEMPLATE, "# ---- optimiser\nlr: 1\n", "bundles/x/method.yaml")


def test_run_settings_list_the_hyper_parameter_sections() -> None:
    text = gen.merge_yaml(TEMPLATE, "# ---- proxy task\nnum_classes: 8\n", "test")
    lines = gen.settings_block(text)
    assert lines[1:] == ['  seed: "@seed"', '  roi_size: "@roi_size"', '  batch_size: "@batch_size"', '  num_classes: "@num_classes"']


def test_metadata_is_deep_merged() -> None:
    merged = gen.deep_merge({"a": {"x": 1, "y": 2}, "b": [1]}, {"a": {"y": 3}, "b": [2], "c": 4})
    assert merged == {"a": {"x": 1, "y": 3}, "b": [2], "c": 4}


def test_a_method_file_needs_its_parts(tmp_path) -> None:
    with pytest.raises(ValueError, match="content before"):
        gen.split_parts("key: 1\n# === train.yaml\n", "m.yaml")
    with pytest.raises(ValueError, match="metadata.json"):
        gen.split_parts("# === train.yaml\nkey: 1\n", "m.yaml")
    with pytest.raises(ValueError, match="twice"):
        gen.split_parts("# === train.yaml\n# === train.yaml\n", "m.yaml")


@pytest.mark.parametrize("bundle", gen.method_bundles())
def test_inference_builds_the_network_training_builds(bundle: str) -> None:
    files = gen.render_bundle(bundle)
    train, infer = (yaml.safe_load(files[f"configs/{n}.yaml"]) for n in ("train", "inference"))
    shared = set(train["run_settings"]) & set(infer)
    assert {"base_channels", "roi_size", "intensity_preset"} <= shared
    assert {k: infer[k] for k in shared} == {k: train[k] for k in shared}
    metadata = json.loads(files["configs/metadata.json"])
    assert metadata["version"] in metadata["changelog"] and metadata["united_ssl"]["method"] == bundle
