"""Checks of one packaged bundle, run by ``test_package_bundle.py`` in a child process that cannot see this repository.

The child is started as ``python -S -c "<runpy.run_path of this file>" ARGS`` with ``PYTHONPATH`` set to a folder of
links to the distributions the package's ``required_packages_version`` lists, with torch, monai, numpy and all they
require, plus jsonschema for the zoo's metadata check (``tools/bundle_packaging/requirements.py: write_site``): no
``.pth`` file runs, so the project's editable install is not there either. Its working directory is elsewhere, and
``run_path`` adds nothing to ``sys.path``. Every step first forgets the vendored ``common`` (its
modules and its ``sys.path`` entry), so each entry point has to make the code importable by itself:

1. the model zoo's checks (``tools/verify_bundle.py --mode full``: files, version, schema offline, packages, large
   files, strict load, ``verify_net_in_out``, ``ckpt_export`` in the declared mode, reload of the export);
2. a smoke training (``monai.bundle.run``, what ``python -m monai.bundle run`` calls): stage 1 of a method bundle,
   the training of a transfer bundle;
3. MONAI Label's ``BundleInferTask`` (monailabel 0.8.5): ``sys.path.insert(0, bundle)``, ``bundle_root`` set, the
   first input/output keys of the metadata, labels from ``channel_def``, ``network_def`` with ``models/model.pt``
   loaded non-strictly, ``preprocessing`` unrolled with ``LoadImaged`` wrapped to keep metadata, the data dict
   ``{"image": path, "image_path": path, ...}``, ``inferer``, ``postprocessing`` without ``SaveImaged`` and the result
   resized back to the image (``Restored``);
4. MONAI Label's ``BundleTrainTask``: ``train.yaml`` with ``bundle_root``, ``train#trainer#max_epochs``,
   ``train#dataset#data`` (labelled pairs), ``validate#dataset#data``, ``device`` and ``train#handlers`` with its
   ``CheckpointLoader(load_dict={"model": "$@network"}, strict=False)`` inserted at index 0, run by
   ``monai.bundle.run(run_id="run", init_id=None, final_id=None, ...)``; first after a longer run left a checkpoint
   in ``models/`` (a method bundle), then once more;
Every step thus runs with only the packages the metadata lists.

The last line printed is ``REPORT <json>``.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import os
import runpy
import sys
import traceback

REPO, PKG, WORK, ARGS = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
report: dict = {"steps": {}}


def _md5(path: str) -> str | None:
    return hashlib.md5(open(path, "rb").read()).hexdigest() if os.path.isfile(path) else None


def forget_vendored_code() -> None:
    """Drop the vendored package from this process, as if each step ran in a fresh one."""
    for name in list(sys.modules):
        if name == "common" or name.startswith("common.") or name == "scripts" or name.startswith("scripts."):
            del sys.modules[name]
    code = os.path.join(PKG, "scripts")
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") not in (code, PKG)]


def step(name: str):
    def wrap(fn):
        forget_vendored_code()
        try:
            report["steps"][name] = {"ok": True, **(fn() or {})}
        except BaseException as e:  # noqa: BLE001 - a SystemExit from a bundle is a failure to report too
            report["steps"][name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[-3000:], "trace": traceback.format_exc()[-6000:]}
        return fn

    return wrap


_SITE = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
report["repo_on_sys_path"] = [
    p for p in sys.path if p and os.path.abspath(p).startswith(os.path.abspath(REPO)) and os.path.abspath(p) not in _SITE
]
try:
    import common  # noqa: F401

    report["common_importable"] = common.__file__
except ImportError:
    report["common_importable"] = None
os.chdir(WORK)


import torch  # noqa: E402
from monai.bundle import ConfigItem, ConfigParser  # noqa: E402
from monai.bundle import run as bundle_run  # noqa: E402

torch.set_num_threads(2)
META = os.path.join(PKG, "configs", "metadata.json")
CONFIGS = os.path.join(PKG, "configs")
MODEL = os.path.join(PKG, "models", "model.pt")
metadata = json.load(open(META))
kind = metadata["united_ssl_package"]["kind"]


@step("verify_full")
def _verify():
    problems = runpy.run_path(os.path.join(REPO, "tools", "verify_bundle.py"))["verify"](PKG, "full")
    if problems:
        raise AssertionError(problems)


@step("smoke")
def _smoke():
    output = os.path.join(WORK, "smoke_models")
    files = [os.path.join(CONFIGS, f) for f in ARGS["smoke_configs"]]
    bundle_run(config_file=files, meta_file=META, logging_file=os.path.join(CONFIGS, "logging.conf"), bundle_root=PKG,
               output_dir=output, **ARGS["data"])  # fmt: skip
    return {"written": sorted(os.path.relpath(p, output) for p in glob.glob(os.path.join(output, "**", "*.pt"), recursive=True))}


@step("monailabel_infer")
def _infer():
    from monai.data import MetaTensor
    from monai.transforms import Compose, LoadImaged, MapTransform, Resize, SaveImaged

    class LoadImageTensord(MapTransform):  # MONAI Label's wrapper: a path is loaded by the bundle's LoadImaged
        def __init__(self, keys, load_image_d):
            super().__init__(keys)
            self.load_image_d = load_image_d

        def __call__(self, data):
            return self.load_image_d(dict(data)) if all(isinstance(data[k], str) for k in self.keys) else dict(data)

    sys.path.insert(0, PKG)
    parser = ConfigParser()
    parser.read_config(os.path.join(CONFIGS, "inference.yaml"))
    parser.config.update({"bundle_root": PKG})
    network = parser.get_parsed_content("network_def", instantiate=True)
    key_image, _ = next(iter(metadata["network_data_format"]["inputs"].items()))
    key_pred, pred = next(iter(metadata["network_data_format"]["outputs"].items()))
    labels = {v.lower(): int(k) for k, v in pred.get("channel_def", {}).items() if v.lower() != "background"}
    checkpoint = torch.load(MODEL, map_location="cpu")
    state = checkpoint.get("model", checkpoint)
    network = copy.deepcopy(network)
    mismatch = sorted(set(network.state_dict()) ^ set(state))
    network.load_state_dict(state, strict=False)
    network.eval()
    parser.config.update({"device": "cpu"})  # _update_device
    parser.ref_resolver.items["device"] = ConfigItem(config="cpu", id="device")
    pre = parser.get_parsed_content("preprocessing", instantiate=True)
    pre = list(pre.transforms) if isinstance(pre, Compose) else pre
    pre = [LoadImageTensord(t.keys, t) if isinstance(t, LoadImaged) else t for t in pre]
    image = ARGS["infer_image"]
    data = {"image": image, "image_path": image, "device": "cpu", "model": os.path.basename(PKG), "result_extension": ".nii.gz"}
    for t in pre:
        data = t(data)
    inferer = parser.get_parsed_content("inferer", instantiate=True)
    with torch.no_grad():
        data[key_pred] = inferer(data[key_image][None].float(), network)[0]
    post = parser.get_parsed_content("postprocessing", instantiate=True)
    post = [t for t in (list(post.transforms) if isinstance(post, Compose) else post) if not isinstance(t, SaveImaged)]
    for t in post:
        data = t(data)
    result = data[key_pred]
    meta = data[key_image].meta if isinstance(data[key_image], MetaTensor) else {}
    original = [int(s) for s in meta.get("spatial_shape", result.shape[1:])]
    if list(result.shape[1:]) != original:  # Restored
        result = Resize(spatial_size=original, mode="nearest")(result)
    sys.path.remove(PKG)
    return {"labels": labels, "key_mismatch": mismatch, "result_shape": list(result.shape), "original_shape": original,
            "result_range": [float(result.min()), float(result.max())]}  # fmt: skip


def _short(config: dict) -> dict:
    """Test time only (MONAI Label does not set these): 2 steps per epoch where a paper-scale config has 500."""
    return {k: v for k, v in {"epoch_length": 2, "num_workers": 0}.items() if k in config}


def monailabel_train(epochs: int) -> dict:
    parser = ConfigParser()
    config_file = os.path.join(CONFIGS, "train.yaml")
    parser.read_config(config_file)
    parser.config.update({"bundle_root": PKG})
    handlers = parser.get("train#handlers", [])
    if os.path.exists(MODEL) and not [t for t in handlers if t.get("_target_") == "CheckpointLoader"]:
        handlers.insert(0, {"_target_": "CheckpointLoader", "load_path": MODEL, "load_dict": {"model": "$@network"}, "strict": False})
    overrides = {
        **_short(parser.config), "bundle_root": PKG, "train#trainer#max_epochs": epochs, "train#dataset#data": ARGS["labeled"][:-1],
        "device": "cpu", "train#handlers": handlers, "validate#dataset#data": ARGS["labeled"][-1:],
    }  # fmt: skip
    before = _md5(MODEL)
    sys.path.insert(0, PKG)
    bundle_run(run_id="run", init_id=None, final_id=None, meta_file=META, config_file=config_file, **overrides)
    sys.path.remove(PKG)
    return {"model_changed": _md5(MODEL) != before}


@step("monailabel_train")
def _train():
    out = {}
    if kind == "ssl":  # a longer earlier run of the same file left its checkpoint in models/ (the reported crash)
        parser = ConfigParser()
        parser.read_config(os.path.join(CONFIGS, "train.yaml"))
        bundle_run(config_file=os.path.join(CONFIGS, "train.yaml"), meta_file=META, bundle_root=PKG, max_epochs=2, **_short(parser.config),
                   **{"train#dataset#data": ARGS["labeled"][:-1], "validate#dataset#data": []})  # fmt: skip
        out["longer_run_checkpoints"] = sorted(os.path.basename(p) for p in glob.glob(os.path.join(PKG, "models", "*", "checkpoint_*.pt")))
    out["first"] = monailabel_train(1)
    out["second"] = monailabel_train(1)
    # the loader's coverage: how many model.pt tensors MONAI Label's CheckpointLoader(strict=False) can place
    forget_vendored_code()
    parser = ConfigParser()
    parser.read_config(os.path.join(CONFIGS, "train.yaml"))
    parser.config.update({"bundle_root": PKG})
    network = parser.get_parsed_content("network_def")
    state = torch.load(MODEL, map_location="cpu")
    before = {k: v.clone() for k, v in network.state_dict().items()}
    unexpected = network.load_state_dict(state, strict=False).unexpected_keys  # what CheckpointLoader(strict=False) does
    changed = sum(1 for k, v in network.state_dict().items() if not torch.equal(v, before[k]))
    out["loader_places"] = len(state) - len(unexpected) if changed else 0
    out["model_tensors"] = len(state)
    return out


print("REPORT " + json.dumps(report, default=str))
