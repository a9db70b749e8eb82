"""Package a bundle for sharing: a self-contained MONAI bundle in the model zoo's layout, with its weights.

Usage (from the repository root)::

    python tools/package_bundle.py bundles/rotation dist/rotation_ct_ssl                 # newest stage with a model.pt
    python tools/package_bundle.py bundles/rotation dist/rotation_ct_ssl --weights bundles/rotation/models/stage3
    python tools/package_bundle.py bundles/transfer_segmentation dist/liver_ct_segmentation --overlays demo

The package (``OUT_DIR``) holds::

    configs/            the bundle's configs, rewritten to use the code below and to default to the weights' settings
    scripts/common/     the project's package `common`, vendored (the zoo's `scripts/` convention)
    models/model.pt     the weights inference and MONAI Label serve (not committed: see large_files.yml)
    pretrained/<name>/  (transfer bundles) the pretrained bundle's network description, run.json and components
    docs/README.md      the model zoo's README sections, then the bundle's own README
    docs/data_license.txt, LICENSE, large_files.yml, .gitignore (models/*.pt, models/*.ts)

and runs with ``python -m monai.bundle run --config_file <pkg>/configs/inference.yaml --bundle_root <pkg>`` from any
working directory with only the packages ``configs/metadata.json`` lists (``tools/bundle_packaging/vendoring.py``
says how the code is found before ``initialize``).

**Defaults are those of the weights.** A method bundle's weights are a stage folder (``--weights``, default the
newest ``models/stage*`` or ``models/joint`` with a ``model.pt``): its ``run.json`` settings of the data, network and
proxy-task ids become the defaults of ``train.yaml`` and ``inference.yaml`` (``tools/bundle_packaging/defaults.py``),
``inference.yaml`` serves ``models/model.pt``, and ``train.yaml`` alone is that stage continued from
``models/model.pt``: what MONAI Label's Train runs (a fresh run each time, ``overwrite: true``; the restorer is
published to ``models/model.pt`` at the end). The stage overlays keep the repository's resumable behaviour. A transfer
bundle's weights are a folder with its ``model.pt`` (default ``<bundle>/models``); the pretrained bundle its network is
built from (``transfer.json`` beside the weights, else the config's ``pretrained_bundle``/``pretrained_dir``) is
embedded under ``pretrained/``, and ``--overlays``/``--overrides`` name the settings it was trained with. The package is
checked at the end (``tools/verify_bundle.py --mode full``: the weights load strictly, the exported TorchScript runs).

**Large files.** ``models/model.pt`` (and the embedded components) are listed in ``large_files.yml`` with their md5;
``url`` is empty until the file is uploaded (a release asset): publishing fills it in. Weights are never committed
(the package's ``.gitignore``; ``bundles/*/models/`` in the repository's).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import fire
import yaml

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)

from bundle_packaging.defaults import append_ids, pinned_settings, set_ids, top_level  # noqa: E402
from bundle_packaging.readme import zoo_readme  # noqa: E402
from bundle_packaging.requirements import required_packages  # noqa: E402
from bundle_packaging.vendoring import CODE_DIR, PACKAGE, subpackages, uses_code, vendor_text  # noqa: E402

__all__ = ["package", "find_weights", "bundle_kind"]

PACKAGE_SECTION = "united_ssl_package"
RUN_RECORD = "run.json"
TRANSFER_RECORD = "transfer.json"
MODEL = "model.pt"


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_kind(bundle_dir: str) -> str:
    """``ssl`` (metadata has ``united_ssl``), ``transfer`` (train.yaml has ``pretrained_bundle``) or ``plain``."""
    metadata = json.loads(_read(os.path.join(bundle_dir, "configs", "metadata.json")))
    if "united_ssl" in metadata:
        return "ssl"
    train = os.path.join(bundle_dir, "configs", "train.yaml")
    if os.path.isfile(train) and "pretrained_bundle" in top_level(_read(train)):
        return "transfer"
    return "plain"


def find_weights(bundle_dir: str, kind: str) -> str:
    """The default weights folder: a method bundle's newest stage folder with a ``model.pt`` (by its time), else
    ``<bundle>/models``.

    Raises:
        FileNotFoundError: there is none (the message says how to make one).
    """
    models = os.path.join(bundle_dir, "models")
    if kind == "ssl":
        stages = [d for d in glob.glob(os.path.join(models, "*")) if os.path.isfile(os.path.join(d, MODEL))]
        if not stages:
            raise FileNotFoundError(
                f"no stage folder with a {MODEL} under {models} (stage 1 has none): run stage 2 or 3 first, e.g. "
                f"`python tools/pretrain.py {bundle_dir} --overlays demo`, or pass --weights <stage folder>."
            )
        return max(stages, key=lambda d: os.path.getmtime(os.path.join(d, MODEL)))
    if not os.path.isfile(os.path.join(models, MODEL)):
        raise FileNotFoundError(f"no {MODEL} in {models}: train the bundle first, or pass --weights <folder with {MODEL}>.")
    return models


def _overlay_values(bundle_dir: str, overlays: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for overlay in overlays:
        path = overlay if os.path.isfile(overlay) else os.path.join(bundle_dir, "configs", f"{overlay}.yaml")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"overlay {overlay!r}: neither a file nor {path}.")
        values.update(yaml.safe_load(_read(path)) or {})
    return values


def _ssl_defaults(bundle_dir: str, weights: str, texts: dict[str, str]) -> tuple[dict, dict]:
    """Rewrite train.yaml/inference.yaml/stage overlays for a method bundle's weights; returns (weights info, pinned)."""
    record_path = os.path.join(weights, RUN_RECORD)
    if not os.path.isfile(record_path):
        raise FileNotFoundError(f"{record_path} not found: --weights must be a stage folder the bundle wrote (run.json holds its settings).")
    record = json.loads(_read(record_path))
    stage = record.get("stage")
    pinned = pinned_settings(texts["train.yaml"], record.get("settings", {}))
    overlay_name = f"stage{stage}.yaml" if isinstance(stage, int) else f"{stage}.yaml"
    if overlay_name not in texts:
        raise FileNotFoundError(f"{record_path} says stage {stage!r}, but the bundle has no configs/{overlay_name}.")
    note = f"packaged: the weights' setting ({os.path.basename(weights)}/{RUN_RECORD})"
    stage_values = yaml.safe_load(texts[overlay_name]) or {}
    train = set_ids(texts["train.yaml"], pinned, note)
    train = set_ids(train, stage_values, f"packaged: train.yaml alone continues the weights' stage ({overlay_name})")
    for key, value, why in (
        ("handoff_components", [], "packaged: train.yaml alone starts from models/model.pt (MONAI Label's CheckpointLoader)"),
        ("overwrite", True, "packaged: every run of train.yaml alone (MONAI Label's Train) starts its stage folder over"),
        ("publish_model", "$os.path.join(@output_dir, 'model.pt')", "packaged: the new restorer replaces models/model.pt"),
    ):
        train = append_ids(train, {key: value}, why)
    texts["train.yaml"] = train
    texts["inference.yaml"] = set_ids(texts["inference.yaml"], {**pinned, "ckpt_dir": "@output_dir"}, note + "; serves models/model.pt")
    for name, text in texts.items():
        if name != "train.yaml" and "stage" in top_level(text):
            texts[name] = append_ids(text, {"overwrite": False}, "packaged: the stage overlays resume a stage run (train.yaml alone starts over)")
    info = {"source": f"{os.path.basename(weights)}/{MODEL}", "stage": stage, "settings": pinned,
            "completed": record.get("completed"), "versions": record.get("versions")}  # fmt: skip
    return info, pinned


def _transfer_defaults(bundle_dir: str, weights: str, texts: dict[str, str], out_dir: str) -> tuple[dict, list[str]]:
    """Embed the pretrained bundle of a transfer bundle's weights; returns (weights info, embedded large files)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(os.path.join(bundle_dir, "configs", "train.yaml"))
    parser["bundle_root"] = bundle_dir
    pretrained_bundle = os.path.abspath(parser.get_parsed_content("pretrained_bundle"))
    pretrained_dir = parser.get_parsed_content("pretrained_dir")
    init = parser.get_parsed_content("init")
    record_path = os.path.join(weights, TRANSFER_RECORD)
    if os.path.isfile(record_path):
        record = json.loads(_read(record_path))
        init = record.get("init", init)
        pretrained_bundle = record.get("bundle") or pretrained_bundle
        pretrained_dir = record.get("stage_dir") or pretrained_dir
    name = os.path.basename(os.path.normpath(pretrained_bundle))
    metadata = json.loads(_read(os.path.join(pretrained_bundle, "configs", "metadata.json")))
    section = metadata.get("united_ssl")
    if not section:
        raise KeyError(f"{pretrained_bundle}/configs/metadata.json has no united_ssl section: not a pretrained bundle.")
    target = os.path.join(out_dir, "pretrained", name)
    _write(os.path.join(target, "configs", "metadata.json"), json.dumps(metadata, indent=4) + "\n")
    network_config = section["network_config"]
    _write(os.path.join(target, network_config), _read(os.path.join(pretrained_bundle, network_config)))
    shutil.copy(os.path.join(pretrained_bundle, "LICENSE"), os.path.join(target, "LICENSE"))
    large: list[str] = []
    stage = None
    if pretrained_dir and os.path.isfile(os.path.join(pretrained_dir, RUN_RECORD)):
        stage = os.path.basename(os.path.normpath(pretrained_dir))
        stage_target = os.path.join(target, "models", stage)
        os.makedirs(stage_target, exist_ok=True)
        shutil.copy(os.path.join(pretrained_dir, RUN_RECORD), stage_target)
        for component in section["components"]:
            source = os.path.join(pretrained_dir, f"{component}.pt")
            if os.path.isfile(source):
                shutil.copy(source, stage_target)
                large.append(os.path.relpath(os.path.join(stage_target, f"{component}.pt"), out_dir))
    elif init != "random":
        raise FileNotFoundError(f"init {init!r} needs the pretrained stage folder, but {pretrained_dir}/{RUN_RECORD} does not exist.")
    values = {
        "pretrained_bundle": f"$os.path.join(@bundle_root, 'pretrained', '{name}')",
        "pretrained_dir": f"$os.path.join(@pretrained_bundle, 'models', '{stage}')" if stage else None,
        "init": init,
    }
    note = "packaged: the embedded pretrained bundle (pretrained/)"
    for file in ("train.yaml", "inference.yaml"):
        if file in texts:
            texts[file] = set_ids(texts[file], values, note)
    info = {"source": MODEL, "init": init, "pretrained": f"pretrained/{name}", "pretrained_stage": stage,
            "pretrained_torchscript": section.get("torchscript")}  # fmt: skip
    return info, large


def _torchscript_probe(out_dir: str) -> str:
    """``script`` when the packaged ``network_def`` scripts, else ``trace`` (run in a child process)."""
    code = (
        "import sys, torch, warnings; warnings.simplefilter('ignore'); from monai.bundle import ConfigParser; "
        "p = ConfigParser(); p.read_config(sys.argv[1] + '/configs/inference.yaml'); p['bundle_root'] = sys.argv[1]; "
        "net = p.get_parsed_content('network_def').eval()\n"
        "try:\n    torch.jit.script(net); print('script')\nexcept Exception:\n    print('trace')"
    )
    result = subprocess.run([sys.executable, "-c", code, out_dir], capture_output=True, text=True, cwd=out_dir)
    if result.returncode != 0:
        raise RuntimeError(f"could not instantiate the packaged network_def of {out_dir}:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def _data_license(bundle_dir: str, metadata: Mapping[str, Any]) -> str:
    own = os.path.join(bundle_dir, "docs", "data_license.txt")
    if os.path.isfile(own):
        return _read(own)
    return (
        "Data of this bundle\n===================\n\n"
        f"{metadata.get('data_source', 'See the README.')}\n\n"
        "No data is distributed with this bundle. The default sample volumes come from the source distribution of the "
        "PyPI package totalsegmentator==2.18.0 (Apache License 2.0), extracted by the repository's tools/sample_data.py.\n"
        "Users who train on their own data are responsible for that data's licence terms.\n"
    )


def _commands(name: str, kind: str, texts: Mapping[str, str]) -> str:
    pkg = f"<path>/{name}"
    lines = [
        "Run from any directory; `--bundle_root` names this folder. Data: `--dataset_dir` (and `--datalist`) or the "
        "environment variable `UNITED_SSL_DATA`.",
        "```bash",
        "# inference with models/model.pt",
        f"python -m monai.bundle run --config_file {pkg}/configs/inference.yaml --bundle_root {pkg}"
        + (" --dataset_dir /data/ct" if kind == "ssl" else " --image_path /data/ct.nii.gz"),
        "# training (MONAI Label runs this file with its own data)",
        f"python -m monai.bundle run --config_file {pkg}/configs/train.yaml --bundle_root {pkg} --dataset_dir /data/ct",
    ]
    if kind == "ssl":
        lines += [
            "# one pretraining stage from scratch (stage1, stage2, stage3 or joint), resumable",
            f"python -m monai.bundle run --config_file \"['{pkg}/configs/train.yaml','{pkg}/configs/stage1.yaml']\" "
            f"--bundle_root {pkg} --dataset_dir /data/ct",
        ]
    lines += [
        "# several GPUs",
        f"torchrun --standalone --nnodes=1 --nproc_per_node=2 -m monai.bundle run --config_file "
        f"\"['{pkg}/configs/train.yaml','{pkg}/configs/multi_gpu_train.yaml']\" --bundle_root {pkg}",
        "# the model zoo's checks, offline (the repository's tools/verify_bundle.py; schema vendored in tools/schema)",
        f"python tools/verify_bundle.py {pkg} --mode full",
        "# TorchScript (see united_ssl_package.torchscript in the metadata: script, or trace with an input shape)",
        f"python -m monai.bundle ckpt_export --net_id network_def --filepath {pkg}/models/model.ts --ckpt_file "
        f"{pkg}/models/model.pt --meta_file {pkg}/configs/metadata.json --config_file {pkg}/configs/inference.yaml "
        f"--bundle_root {pkg}",
        "```",
    ]
    return "\n".join(lines)


def _performance(weights_dir: str, info: Mapping[str, Any]) -> str:
    metrics = os.path.join(weights_dir, "metrics.jsonl")
    if not os.path.isfile(metrics):
        return "No evaluation is packaged with these weights; see the repository bundle's README for its measurements."
    rows = [json.loads(line) for line in _read(metrics).splitlines() if line.strip()]
    last = {}
    for row in rows:
        last[row.get("split", "train")] = row
    shown = "\n".join(f"- {split}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                  for k, v in row.items() if k != "split") for split, row in last.items())  # fmt: skip
    return f"The packaged run's last epoch ({os.path.basename(weights_dir)}/metrics.jsonl):\n\n{shown}"


def _set_classes(metadata: dict[str, Any], pinned: Mapping[str, Any]) -> None:
    """A task's pinned ``class_names`` in the first output's ``channel_def`` (MONAI Label's label names) and
    ``pred_classes``; a ``background`` channel 0 stays first."""
    if "class_names" not in pinned:
        return
    names = list(pinned["class_names"])
    output = next(iter(metadata["network_data_format"]["outputs"].values()))
    background = str(output.get("channel_def", {}).get("0", "")).lower() == "background"
    channels = (["background"] if background else []) + names
    output["channel_def"] = {str(i): n for i, n in enumerate(channels)}
    output["num_channels"] = len(channels)
    metadata["pred_classes"] = ", ".join(f"{i} {n}" for i, n in enumerate(channels))
    if "source_labels" in pinned:
        metadata["label_classes"] = "label-map values of each class: " + ", ".join(
            f"{n} {v}" for n, v in zip(names, pinned["source_labels"])
        )


def package(
    bundle_dir: str,
    out_dir: str,
    weights: str | None = None,
    overlays: str | Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    torchscript: str | None = None,
    overwrite: bool = False,
    check: bool = True,
) -> str:
    """Write the self-contained package of ``bundle_dir`` into ``out_dir`` (see the module docstring).

    Args:
        bundle_dir: a repository bundle folder, e.g. ``bundles/rotation``.
        out_dir: the package folder (created; its name is the packaged bundle's name).
        weights: a stage folder (method bundles) or a folder with ``model.pt`` (others); default: see :func:`find_weights`.
        overlays: configs (names in the bundle's ``configs/`` or paths) whose values the weights were trained with;
            they become the packaged defaults (a method bundle's ``run.json`` settings come on top).
        overrides: ``{id: value}`` the weights were trained with, also made defaults (after ``overlays``).
        torchscript: ``script`` or ``trace``; default: the metadata's declaration, else what the packaged network allows.
        overwrite: replace an existing non-empty ``out_dir``.
        check: run ``tools/verify_bundle.py --mode full`` on the package at the end.

    Returns:
        The package folder.
    """
    bundle_dir = os.path.abspath(bundle_dir)
    out_dir = os.path.abspath(out_dir)
    name = os.path.basename(out_dir)
    kind = bundle_kind(bundle_dir)
    weights = os.path.abspath(weights) if weights else find_weights(bundle_dir, kind)
    model = os.path.join(weights, MODEL) if os.path.isdir(weights) else weights
    weights = weights if os.path.isdir(weights) else os.path.dirname(weights)
    if not os.path.isfile(model):
        raise FileNotFoundError(f"{model} not found: the package serves models/{MODEL}.")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        if not overwrite:
            raise FileExistsError(f"{out_dir} is not empty: pass --overwrite True to replace it.")
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)

    configs_dir = os.path.join(bundle_dir, "configs")
    texts = {n: _read(os.path.join(configs_dir, n)) for n in sorted(os.listdir(configs_dir)) if n.endswith((".yaml", ".yml"))}
    metadata = json.loads(_read(os.path.join(configs_dir, "metadata.json")))
    given = {**_overlay_values(bundle_dir, [o for o in ([overlays] if isinstance(overlays, str) else overlays or []) if o]),
             **dict(overrides or {})}  # fmt: skip
    for file in ("train.yaml", "inference.yaml"):
        if file in texts and given:
            texts[file] = set_ids(texts[file], given, "packaged: the weights' setting")
    large = []
    if kind == "ssl":
        info, pinned = _ssl_defaults(bundle_dir, weights, texts)
        pinned = {**given, **pinned}
    else:
        info, large = _transfer_defaults(bundle_dir, weights, texts, out_dir) if kind == "transfer" else ({"source": MODEL}, [])
        pinned = given
    info["settings"] = pinned
    data_default = f"$os.environ.get('UNITED_SSL_DATA') or '/workspace/data/{name}'"
    for file, text in texts.items():
        if "dataset_dir" in top_level(text):
            texts[file] = set_ids(text, {"dataset_dir": data_default}, "packaged: your data (or UNITED_SSL_DATA)")

    # the code the configs import, vendored
    shutil.copytree(os.path.join(REPO_ROOT, PACKAGE), os.path.join(out_dir, CODE_DIR, PACKAGE),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    _write(os.path.join(out_dir, CODE_DIR, "__init__.py"), '"""Code this bundle carries: the package `common` (vendored from United SSL bundles)."""\n')
    modules = subpackages(list(texts.values()))
    for file, text in texts.items():
        define = bool(re.search(r"^imports:", text, flags=re.M)) and "import common" in text
        if uses_code(text):
            texts[file] = vendor_text(text, f"{name}/configs/{file}", define, modules)
    os.makedirs(os.path.join(out_dir, "configs"), exist_ok=True)
    for file in os.listdir(configs_dir):
        target = os.path.join(out_dir, "configs", file)
        if file in texts:
            _write(target, texts[file])
        else:  # metadata.json is written below; logging.conf as it is
            shutil.copy(os.path.join(configs_dir, file), target)

    # weights
    os.makedirs(os.path.join(out_dir, "models"), exist_ok=True)
    shutil.copy(model, os.path.join(out_dir, "models", MODEL))
    large = [f"models/{MODEL}"] + large
    entries = [{"path": p, "url": "", "hash_val": _md5(os.path.join(out_dir, p)), "hash_type": "md5"} for p in large]
    _write(
        os.path.join(out_dir, "large_files.yml"),
        "# Weights are not committed. `url` is filled in when the file is uploaded (e.g. a release asset); hash_val is\n"
        "# the md5 of the packaged file, so `python -m monai.bundle download_large_files` can check a download.\n"
        + yaml.safe_dump({"large_files": entries}, sort_keys=False),
    )
    _write(os.path.join(out_dir, ".gitignore"), "# weights are listed in large_files.yml, never committed\nmodels/*.pt\nmodels/*.ts\npretrained/*/models/\neval/\n")

    # metadata
    embedded = [_read(p) for p in glob.glob(os.path.join(out_dir, "pretrained", "*", "configs", "*.yaml"))]
    metadata["required_packages_version"] = required_packages(
        os.path.join(out_dir, CODE_DIR, PACKAGE), {**texts, **{f"pretrained{i}.yaml": t for i, t in enumerate(embedded)}}
    )
    image = next(iter(metadata["network_data_format"]["inputs"].values()))
    if "roi_size" in pinned and "patch_size" in image:
        image["patch_size"] = pinned["roi_size"]
    if "spacing" in pinned and "spacing" in image:
        image["spacing"] = "native" if pinned["spacing"] is None else f"{pinned['spacing']} mm"
    _set_classes(metadata, pinned)
    mode = torchscript or metadata.get("united_ssl", {}).get("torchscript") or metadata.get("torchscript")
    metadata[PACKAGE_SECTION] = {
        "source": os.path.relpath(bundle_dir, REPO_ROOT),
        "kind": kind,
        "weights": info,
        "torchscript": mode,
        "code": f"{CODE_DIR}/{PACKAGE}: the repository's package, loaded by the configs' `common` id",
    }
    _write(os.path.join(out_dir, "configs", "metadata.json"), json.dumps(metadata, indent=4) + "\n")
    if not mode:
        metadata[PACKAGE_SECTION]["torchscript"] = _torchscript_probe(out_dir)
        _write(os.path.join(out_dir, "configs", "metadata.json"), json.dumps(metadata, indent=4) + "\n")

    # licence and docs
    shutil.copy(os.path.join(bundle_dir, "LICENSE"), os.path.join(out_dir, "LICENSE"))
    _write(os.path.join(out_dir, "docs", "data_license.txt"), _data_license(bundle_dir, metadata))
    readme = os.path.join(bundle_dir, "docs", "README.md")
    _write(
        os.path.join(out_dir, "docs", "README.md"),
        zoo_readme(name, metadata, "ssl" if kind == "ssl" else "transfer", metadata[PACKAGE_SECTION]["weights"],
                   _commands(name, kind, texts), _read(readme) if os.path.isfile(readme) else None,
                   _performance(weights, info)),  # fmt: skip
    )
    print(f"packaged {os.path.relpath(bundle_dir, REPO_ROOT)} ({kind}, weights {model}) into {out_dir}")
    if check:
        result = subprocess.run([sys.executable, os.path.join(TOOLS, "verify_bundle.py"), out_dir, "--mode", "full"], cwd=out_dir)
        if result.returncode != 0:
            raise RuntimeError(f"the package {out_dir} failed tools/verify_bundle.py --mode full (see above).")
    return out_dir


if __name__ == "__main__":
    fire.Fire(package, serialize=lambda _: None)
