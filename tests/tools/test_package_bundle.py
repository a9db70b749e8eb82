"""tools/package_bundle.py: every bundle packaged, then used where this repository cannot be imported.

For each bundle in ``bundles/*`` the test makes smoke-scale weights (a method bundle's stage 2; a transfer bundle's
fine-tuning from rotation's stage 2), packages them into a temporary folder and runs ``packaged_bundle_checks.py`` in
a child process that can import only the packages the package's metadata lists (no ``.pth``: the editable install is
hidden) and whose working directory is elsewhere: the model zoo's checks, a smoke training, MONAI Label's inference
and training contracts (see that file). Unit tests cover the pieces (the config rewrite, the defaults, the
requirements, the README, large_files.yml).
"""

from __future__ import annotations

import json
from pydoc import locate
import os
import subprocess
import sys

import pytest
import torch
import yaml
from monai.bundle import ConfigWorkflow

from common.data import write_phantom_dataset

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLES = os.path.join(REPO_ROOT, "bundles")
sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))

import package_bundle as pkg  # noqa: E402
from bundle_packaging.defaults import pinned_settings, set_ids  # noqa: E402
from bundle_packaging.readme import SECTIONS  # noqa: E402
from bundle_packaging.requirements import missing_requirements, required_packages, write_site  # noqa: E402
from bundle_packaging.vendoring import vendor_structure, vendor_text  # noqa: E402

ALL_BUNDLES = sorted(d for d in os.listdir(BUNDLES) if os.path.isfile(os.path.join(BUNDLES, d, "configs", "metadata.json")))
CHECKS = os.path.join(REPO_ROOT, "tests", "tools", "packaged_bundle_checks.py")
# bundles whose training set is derived from the images (TransVW's discovered visual words), so MONAI Label's datastore
# images cannot be trained on directly: its training must stop with the command that derives the set
MONAILABEL_TRAIN_REFUSED = {"transvw": "discover_visual_words.py"}
PHANTOM_TASK = {"label_set": "phantom", "val_subjects": ["phantom-002"]}
PHANTOM_CLASSES = {"class_names": ["organ", "bone"], "source_labels": [[1], [2]]}


def _workflow(bundle: str, names: list[str], **overrides) -> ConfigWorkflow:
    configs = os.path.join(BUNDLES, bundle, "configs")
    workflow = ConfigWorkflow(
        config_file=[os.path.join(configs, f"{n}.yaml") for n in names],
        meta_file=os.path.join(configs, "metadata.json"),
        logging_file=os.path.join(configs, "logging.conf"),
        workflow_type="train",
        bundle_root=os.path.join(BUNDLES, bundle),
        **overrides,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> str:
    return write_phantom_dataset(str(tmp_path_factory.mktemp("phantom")), num_volumes=3, shape=(48, 48, 40))


@pytest.fixture(scope="module")
def rotation_stage2(phantom: str, tmp_path_factory) -> str:
    """Smoke-scale rotation stage-2 weights (what the transfer bundles fine-tune from)."""
    output = str(tmp_path_factory.mktemp("rotation_models"))
    data = {"dataset_dir": os.path.dirname(phantom), "datalist": phantom}
    _workflow("rotation", ["train", "stage2", "smoke"], output_dir=output, handoff_components=[], **data)
    return os.path.join(output, "stage2")


def _labeled(phantom: str) -> list[dict]:
    base = os.path.dirname(phantom)
    entries = json.load(open(phantom))["labeled"]
    return [{"image": os.path.join(base, e["image"]), "label": os.path.join(base, e["label"])} for e in entries]


def _weights(bundle: str, phantom: str, rotation_stage2: str, tmp_path) -> tuple[str, dict, dict]:
    """(weights folder, package() keyword arguments, arguments of the child's checks)."""
    data = {"dataset_dir": os.path.dirname(phantom), "datalist": phantom}
    kind = pkg.bundle_kind(os.path.join(BUNDLES, bundle))
    if kind == "ssl":
        output = str(tmp_path / "weights")
        _workflow(bundle, ["train", "stage2", "smoke"], output_dir=output, handoff_components=[], **data)
        return os.path.join(output, "stage2"), {}, {"smoke_configs": ["train.yaml", "stage1.yaml", "smoke.yaml"], "data": data}
    output = str(tmp_path / "weights")
    pretrained = {"pretrained_bundle": os.path.join(BUNDLES, "rotation"), "pretrained_dir": rotation_stage2}
    _workflow(bundle, ["train", "smoke"], output_dir=output, **data, **PHANTOM_TASK, **PHANTOM_CLASSES, **pretrained)
    return output, {"overrides": PHANTOM_CLASSES}, {"smoke_configs": ["train.yaml", "smoke.yaml"], "data": {**data, **PHANTOM_TASK}}


def _isolated_env(package_dir: str, site_dir: str) -> dict:
    """Only the metadata's packages (and jsonschema, which the zoo's metadata check needs) importable; no .pth files."""
    required = json.load(open(os.path.join(package_dir, "configs", "metadata.json")))["required_packages_version"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = write_site([*required, "jsonschema"], site_dir)
    env["OMP_NUM_THREADS"] = "2"
    return env


def _bundle_datalist(bundle: str, phantom: str, tmp_path) -> str:
    """The datalist ``bundle`` trains on: the phantom's, or what its ``united_ssl.prepare_datalist`` hook writes from it
    (DiRA 2D slices the volumes, as a user runs ``tools/pretrain.py`` before training)."""
    prepare = json.load(open(os.path.join(BUNDLES, bundle, "configs", "metadata.json"))).get("united_ssl", {}).get("prepare_datalist")
    if prepare is None:
        return phantom
    written = locate(prepare)(os.path.join(BUNDLES, bundle), ["smoke"], phantom, montage_classes=0, progress=False)
    return written["datalist"] if isinstance(written, dict) else written


# One packaged check takes a minute or more on 2 cores, so the default run checks one bundle of each kind that
# differs in packaging (a traced transformer with a root decoder component, a 2D bundle whose datalist is prepared
# and whose model.pt has FlexibleUNet keys, a transfer bundle); UNITED_SSL_ALL_BUNDLES=1 checks every bundle.
REPRESENTATIVE = {"swin_unetr", "dira_2d", "pcrl", "transfer_segmentation"}
EVERY_BUNDLE = os.environ.get("UNITED_SSL_ALL_BUNDLES") == "1"
PACKAGED = [
    b if EVERY_BUNDLE or b in REPRESENTATIVE
    else pytest.param(b, marks=pytest.mark.skip(reason="packaged check of every bundle: UNITED_SSL_ALL_BUNDLES=1"))
    for b in ALL_BUNDLES
]  # fmt: skip


@pytest.mark.parametrize("bundle", PACKAGED)
def test_packaged_bundle_runs_without_the_repository(bundle: str, phantom: str, rotation_stage2: str, tmp_path) -> None:
    phantom = _bundle_datalist(bundle, phantom, tmp_path)
    weights, options, args = _weights(bundle, phantom, rotation_stage2, tmp_path)
    package_dir = pkg.package(os.path.join(BUNDLES, bundle), str(tmp_path / f"{bundle}_pkg"), weights=weights, check=False, **options)
    assert torch.load(os.path.join(package_dir, "models", "model.pt"), weights_only=True).keys() == torch.load(
        os.path.join(weights, "model.pt"), weights_only=True
    ).keys()
    work = tmp_path / "elsewhere"
    work.mkdir()
    labeled = _labeled(phantom)[-3:]  # MONAI Label trains on two images and validates on one (2D: a few slices)
    args.update(labeled=labeled, infer_image=labeled[-1]["image"])
    code = f"import runpy; runpy.run_path({CHECKS!r}, run_name='__main__')"
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, REPO_ROOT, package_dir, str(work), json.dumps(args)],
        cwd=str(work), env=_isolated_env(package_dir, str(tmp_path / "site")), capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, f"no report (rc {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    report = json.loads(lines[-1][len("REPORT ") :])
    assert report["common_importable"] is None and report["repo_on_sys_path"] == []  # the repository is out of reach
    failed = {name: s for name, s in report["steps"].items() if not s["ok"]}
    if bundle in MONAILABEL_TRAIN_REFUSED:  # refused before training, with the command that prepares its data
        refused = failed.pop("monailabel_train", {"error": "trained on datastore images it cannot use"})
        assert refused["error"].startswith("DataError") and MONAILABEL_TRAIN_REFUSED[bundle] in refused["error"], refused
    assert not failed, json.dumps(failed, indent=1)[-8000:]
    steps = report["steps"]
    kind = pkg.bundle_kind(os.path.join(BUNDLES, bundle))
    assert any(p.endswith("encoder.pt") or p.endswith("model.pt") for p in steps["smoke"]["written"]), steps["smoke"]
    infer = steps["monailabel_infer"]
    assert infer["key_mismatch"] == [] and infer["result_shape"][1:] == infer["original_shape"]
    if kind == "ssl":
        assert infer["labels"] == {}  # the restored image is offered as no label
    else:
        assert set(infer["labels"]) == {"organ", "bone"}  # the task's classes, not the repository default's
    if bundle in MONAILABEL_TRAIN_REFUSED:
        return
    if kind == "ssl":  # a longer earlier run's stage checkpoint was there (transfer bundles: test_transfer_*.py)
        assert steps["monailabel_train"]["longer_run_checkpoints"]
    train = steps["monailabel_train"]
    assert train["first"]["model_changed"] and train["second"]["model_changed"]  # inference serves what training wrote
    assert train["loader_places"] == train["model_tensors"], "MONAI Label's CheckpointLoader would place only part of model.pt"


# ------------------------------------------------------------------------------------------ the pieces

CONFIG = """\
imports:
  - $import os
  - $import common
  - $import common.data
# ---- x
bundle_root: .
net:
  _target_: common.networks.Net   # a component from the package
  width: "$common.data.width(@bundle_root)"   # an expression
  parts:
    - _target_: monai.networks.nets.UNet
    - _target_: common.networks.Part
words: "$import common.visual_words"
label: "text with common.data inside a plain string"
"""


def test_config_rewrite_matches_the_structural_rewrite_and_keeps_comments() -> None:
    text = vendor_text(CONFIG, "x.yaml", define=True, modules=["data", "networks", "visual_words"])
    parsed = yaml.safe_load(text)
    assert "$import common" not in text and "# a component from the package" in text
    assert parsed["net"]["_requires_"] == "@common" and parsed["net"]["parts"][1]["_requires_"] == "@common"
    assert "_requires_" not in parsed["net"]["parts"][0]
    assert parsed["net"]["width"] == "$@common.data.width(@bundle_root)"
    assert parsed["words"] == "$@common.visual_words" and parsed["label"] == "text with common.data inside a plain string"
    assert parsed["imports"] == ["$import os", "$import sys", "$from importlib import import_module as load_module"]
    assert "'common.visual_words'" in parsed["common"] and "@code_dir" in parsed["common"]
    structural = vendor_structure(yaml.safe_load(CONFIG))
    assert {k: v for k, v in parsed.items() if k not in ("code_dir", "common", "imports")} == {
        k: v for k, v in structural.items() if k != "imports"
    }


def test_a_layout_the_text_rewrite_cannot_handle_is_an_error() -> None:
    with pytest.raises(ValueError, match="flow.style"):
        vendor_text("imports:\n  - $import common\nnet: {_target_: common.networks.Net}\n", "flow.yaml", True, [])
    with pytest.raises(ValueError, match="from common"):
        vendor_structure({"x": "$from common.data import f"}, "x.yaml")


def test_pinned_settings_are_the_network_and_input_not_throughput_or_schedule() -> None:
    train = (
        "# ---- data\nroi_size: [64, 64, 64]  # cube\nbatch_size: 4\nintensity_preset: \"$f(@datalist)\"\n"
        "# ---- networks\nbase_channels: 32\nnum_levels: 4\nfeatures: \"$make(@base_channels)\"\n"
        "# ---- optimisation\nmax_epochs: 200\n"
    )
    settings = {"roi_size": [32, 32, 32], "batch_size": 1, "intensity_preset": "ct", "base_channels": 8, "num_levels": 4,
                "features": [8, 16], "max_epochs": 20}  # fmt: skip
    assert pinned_settings(train, settings) == {"roi_size": [32, 32, 32], "intensity_preset": "ct", "base_channels": 8}
    text = set_ids(train, {"roi_size": [32, 32, 32]}, "packaged")
    assert "roi_size: [32, 32, 32]" in text and "# packaged; cube" in text and "batch_size: 4" in text


def test_required_packages_are_installed_distributions_not_this_repository(tmp_path) -> None:
    code = tmp_path / "common"
    code.mkdir()
    (code / "a.py").write_text("import os\nimport scipy.ndimage\nfrom ignite.engine import Engine\nfrom common.x import y\n")
    required = required_packages(str(code), {"train.yaml": "x: {_target_: TensorBoardStatsHandler}"})
    assert set(required) == {"scipy", "pytorch-ignite", "pyyaml", "tensorboard", "fire"}
    assert "united-ssl-bundles" not in required and "torch" not in required
    assert missing_requirements({"scipy", "yaml", "os", "torch", "numpy", "common", "typing_extensions"}, required) == []
    assert missing_requirements({"matplotlib"}, required) == ["matplotlib (module matplotlib)"]
    assert "mlflow (module mlflow)" in missing_requirements({"mlflow"}, required)


def test_package_refuses_a_non_empty_folder_and_weights_without_a_model(tmp_path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    (tmp_path / "stage1").mkdir()
    with pytest.raises(FileNotFoundError, match="model.pt"):
        pkg.package(os.path.join(BUNDLES, "rotation"), str(tmp_path / "new"), weights=str(tmp_path / "stage1"), check=False)
    with pytest.raises(FileNotFoundError, match="stage 2 or 3"):
        pkg.find_weights(str(tmp_path), "ssl")


def test_package_layout_readme_and_large_files(phantom: str, rotation_stage2: str, tmp_path) -> None:
    out = pkg.package(os.path.join(BUNDLES, "rotation"), str(tmp_path / "rotation_ct_ssl"), weights=rotation_stage2, check=False)
    for path in ("configs/metadata.json", "configs/inference.yaml", "configs/train.yaml", "configs/logging.conf", "LICENSE",
                 "docs/README.md", "docs/data_license.txt", "models/model.pt", "large_files.yml", "scripts/common/__init__.py",
                 ".gitignore"):  # fmt: skip
        assert os.path.isfile(os.path.join(out, path)), path
    readme = open(os.path.join(out, "docs", "README.md")).read()
    assert all(f"**{section}**" in readme for section in SECTIONS)
    large = yaml.safe_load(open(os.path.join(out, "large_files.yml")))["large_files"]
    assert large[0]["path"] == "models/model.pt" and large[0]["url"] == "" and len(large[0]["hash_val"]) == 32
    assert "models/*.pt" in open(os.path.join(out, ".gitignore")).read()
    metadata = json.load(open(os.path.join(out, "configs", "metadata.json")))
    assert "united-ssl-bundles" not in metadata["required_packages_version"]
    section = metadata["united_ssl_package"]
    assert section["torchscript"] == "script" and section["weights"]["stage"] == 2
    assert metadata["network_data_format"]["inputs"]["image"]["patch_size"] == section["weights"]["settings"]["roi_size"]
    train = yaml.safe_load(open(os.path.join(out, "configs", "train.yaml")))
    assert (train["stage"], train["w_res"], train["overwrite"], train["handoff_components"]) == (2, 100.0, True, [])
    assert train["base_channels"] == json.load(open(os.path.join(rotation_stage2, "run.json")))["settings"]["base_channels"]
    assert yaml.safe_load(open(os.path.join(out, "configs", "stage1.yaml")))["overwrite"] is False
    assert yaml.safe_load(open(os.path.join(out, "configs", "inference.yaml")))["ckpt_dir"] == "@output_dir"
