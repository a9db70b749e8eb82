"""Annotation efficiency: what each pretrained method and stage buys an organ segmentation and an organ patch
classification task, against random initialisation, at several label fractions and seeds.

Usage (from the repository root, after ``python tools/sample_data.py``)::

    python tools/transfer_benchmark.py --scale demo --results_dir results/transfer_demo      # 2 CPU cores
    python tools/transfer_benchmark.py --scale paper --results_dir results/transfer_paper    # GPUs
    python tools/transfer_benchmark.py --scale demo --methods all                            # every method bundle

Method bundles are found by the ``united_ssl`` section of their metadata (``bundles/*/configs/metadata.json``), so a
new method is benchmarked without a change here. For each method the benchmark pretrains stages 1, 2 and 3 (and the
joint baseline at paper scale) on its own datalist, then fine-tunes ``bundles/transfer_segmentation`` and
``bundles/transfer_classification`` from every stage (segmentation: the encoder from stage 1, encoder and decoder
from stages 2 and 3; classification: the encoder) and from random weights, for every label fraction and seed.

Splits (deterministic; written to ``<results_dir>/data/splits.json``):

* **Test subject**: the sample datalist's ``validation`` subject (ts-ct-c). It appears nowhere in pretraining (the
  benchmark writes its own pretraining datalist) nor in fine-tuning: every test voxel is unseen.
* **Transfer training subject**: the first ``unlabeled`` subject with a label map of the profile's label set
  (ts-ct-a). It is also pretrained on, as unlabeled data of a target site would be.
* **Other unlabeled subjects** (ts-ct-b): the middle quarter of the volume (37.5-62.5 % of its height) holds the
  validation cubes of pretraining (the pretext curves of the learning report); the slices below and above it are
  pretraining data. No voxel is in both.
* **Label fractions**: segmentation annotates a fraction of the training subject's axial slabs (``slab`` slices
  each; every subset holds at least one slab with the organ, positives and negatives drawn in proportion);
  classification annotates a fraction of a pool of organ-centre points (evenly spread over each organ, a fraction
  per organ, at least one). Subsets are nested (10 % inside 25 % ...) and drawn from a permutation seeded by the
  run's seed; the same seed gives the same subset and training seed to every initialisation (paired comparison).

Outputs in ``<results_dir>``: ``runs.csv`` (every run), ``summary.csv`` and ``results.md`` (mean ± sd over seeds,
gain over random with a paired t-test), ``plots/<task>_<metric>.png`` (metric vs label fraction, one line per
initialisation), ``learning/learning.{png,md}`` (what pretraining learned), ``timing.json``.
Interrupted runs resume: finished stages and runs already in ``runs.csv`` are skipped.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fire
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from learning_report import learning_report  # noqa: E402
from pretrain import as_list, run_stage  # noqa: E402

from common.data import write_datalist  # noqa: E402
from common.data.datalist import read_datalist_json  # noqa: E402
from common.data.nifti_io import save_nifti  # noqa: E402
from common.transfer import (  # noqa: E402
    SSLBundle,
    discover_ssl_bundles,
    read_ssl_bundle,
    stage_folders,
)
from common.transfer.report import markdown_table, plot_curves  # noqa: E402
from common.transfer.splits import (  # noqa: E402
    class_map,
    nested_fractions,
    nested_points,
    resample_pair,
    slab_windows,
    spread_points,
    write_point_map,
    write_region,
)
from common.transfer.statistics import summarise  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLES = os.path.join(REPO, "bundles")
logger = logging.getLogger("transfer_benchmark")

#: Label sets and the target classes built from them (label-map values per class).
PROFILES: dict[str, dict[str, Any]] = {
    "sample": {  # TotalSegmentator 'total' maps of the sample CT data
        "label_set": "totalsegmentator_total",
        "segmentation": {"liver": [5]},
        "classification": {
            "liver": [5], "spleen": [1], "stomach": [6], "vertebra": list(range(26, 51)), "back_muscle": [86, 87],
        },
    },  # fmt: skip
    "phantom": {  # common.data.phantom (tests)
        "label_set": "phantom",
        "segmentation": {"organ": [1]},
        "classification": {"organ": [1], "bone": [2]},
    },
}

#: Metric name -> higher is better, per task kind.
METRICS = {
    "segmentation": {"dice": True, "hd95_mm": False},
    "classification": {"auc": True, "balanced_accuracy": True},
}
METRIC_LABELS = {"dice": "Dice", "hd95_mm": "HD95 (mm)", "auc": "AUC", "balanced_accuracy": "balanced accuracy"}

#: Scales: the grid, the pretraining run and the fine-tuning budget. Overrides apply to a bundle where it has the id.
SCALES: dict[str, dict[str, Any]] = {
    "demo": {  # 2 CPU cores, about 20 minutes with one method
        "spacing": [6.0, 6.0, 4.0],
        "fractions": [0.1, 0.25, 0.5, 1.0],
        "seeds": 3,
        "methods": ["rotation"],
        "stages": ["stage1", "stage2", "stage3"],
        "pretrain_overlays": ["demo"],
        "pretrain_overrides": {
            "spacing": [6.0, 6.0, 4.0], "roi_size": [32, 32, 8], "num_samples": 32, "learning_rate": 1.0e-3,
            "rotation_group": "c4", "val_interval": 5, "early_stop_patience": 1000, "save_interval": 0,
            "progress_bar": False,
        },  # fmt: skip
        "stage_epochs": {"stage1": 150, "stage2": 30, "stage3": 10, "joint": 50},
        "segmentation": {"roi_size": [32, 32, 8], "slab": 8, "steps": 120, "batch_size": 2, "num_samples": 2,
                         "learning_rate": 1.0e-3},  # fmt: skip
        "classification": {"roi_size": [16, 16, 8], "pool_per_class": 40, "test_per_class": 32, "steps": 40,
                           "batch_size": 1, "num_samples": 16, "learning_rate": 3.0e-3},  # fmt: skip
    },
    "paper": {  # GPUs: paper widths, 10 seeds, the joint baseline
        "spacing": [1.5, 1.5, 2.0],
        "fractions": [0.05, 0.1, 0.25, 0.5, 1.0],
        "seeds": 10,
        "methods": "all",
        "stages": ["stage1", "stage2", "stage3", "joint"],
        "pretrain_overlays": [],
        "pretrain_overrides": {"spacing": [1.5, 1.5, 2.0], "roi_size": [64, 64, 16], "progress_bar": False},
        "stage_epochs": {},
        "segmentation": {"roi_size": [64, 64, 16], "slab": 16, "steps": 2000, "batch_size": 2, "num_samples": 4,
                         "learning_rate": 1.0e-3},  # fmt: skip
        "classification": {"roi_size": [32, 32, 16], "pool_per_class": 200, "test_per_class": 100, "steps": 2000,
                           "batch_size": 1, "num_samples": 32, "learning_rate": 1.0e-3},  # fmt: skip
    },
    "smoke": {  # seconds, for the tests (phantom data)
        "spacing": [3.0, 3.0, 3.0],
        "fractions": [0.5, 1.0],
        "seeds": 2,
        "methods": ["rotation"],
        "stages": ["stage1", "stage2"],
        "pretrain_overlays": ["smoke"],
        "pretrain_overrides": {"spacing": [3.0, 3.0, 3.0], "progress_bar": False},
        "stage_epochs": {},
        "segmentation": {"roi_size": [16, 16, 16], "slab": 8, "steps": 1, "batch_size": 1, "num_samples": 1,
                         "learning_rate": 1.0e-3},  # fmt: skip
        "classification": {"roi_size": [16, 16, 16], "pool_per_class": 4, "test_per_class": 2, "steps": 1,
                           "batch_size": 1, "num_samples": 2, "learning_rate": 1.0e-3},  # fmt: skip
    },
}

RUN_FIELDS = ["task", "init", "method", "stage", "init_mode", "fraction", "seed", "labelled_units",
              "dice", "hd95_mm", "auc", "balanced_accuracy", "seconds"]  # fmt: skip


# ---------------------------------------------------------------------------------------------------- data
def _subjects(datalist: str, label_set: str) -> tuple[dict, dict, list[dict]]:
    """(transfer training pair, test pair, other unlabeled volumes) of the sample-style datalist."""
    data = read_datalist_json(datalist)
    base = os.path.dirname(os.path.abspath(datalist))
    labeled = [e for e in data.get("labeled", []) if e.get("label_set") == label_set]
    unlabeled = data.get("unlabeled", [])
    validation = data.get("validation", [])
    if not validation or not labeled:
        raise ValueError(f"{datalist}: the benchmark needs a 'validation' subject and 'labeled' pairs of label set {label_set!r}.")
    test_subject = validation[0].get("subject")
    test = next((e for e in labeled if e.get("subject") == test_subject), None)
    unlabeled_images = {e["image"] for e in unlabeled}
    train = next((e for e in labeled if e["image"] in unlabeled_images and e.get("subject") != test_subject), None)
    if test is None or train is None:
        raise ValueError(f"{datalist}: no labelled test subject {test_subject!r} or no labelled unlabeled subject.")
    others = [e for e in unlabeled if e.get("subject") not in (train.get("subject"), test_subject)]

    def absolute(entry: dict) -> dict:
        return {**entry, **{k: os.path.join(base, entry[k]) for k in ("image", "label") if k in entry}}

    return absolute(train), absolute(test), [absolute(e) for e in others]


def prepare_pretraining_data(out: str, train: dict, others: list[dict], val_region: tuple[float, float] = (0.375, 0.625)) -> tuple[str, dict]:
    """The pretraining datalist: the training subject whole; of every other subject the slices below and above
    ``val_region`` (fractions of its inferior-to-superior extent) as two volumes, and the slab in between as the
    validation set. A middle slab looks like what is pretrained on around it, so its pretext accuracy measures
    generalisation to unseen voxels of familiar anatomy. The test subject is not in it."""
    out = os.path.abspath(out)  # the datalist is read relative to its own folder: name its files by absolute path
    low, high = val_region
    unlabeled, validation, regions = [{"image": train["image"], "subject": train.get("subject")}], [], {}
    for entry in others:
        name = os.path.basename(entry["image"]).split(".")[0]
        parts = {"inferior": (0.0, low), "validation": (low, high), "superior": (high, 1.0)}
        regions[entry["image"]] = {}
        for part, (a, b) in parts.items():
            path = os.path.join(out, f"{name}_{part}.nii.gz")
            regions[entry["image"]][part] = write_region(entry["image"], path, a, b)
            (validation if part == "validation" else unlabeled).append({"image": path, "subject": entry.get("subject")})
    datalist = {
        "name": "transfer-benchmark-pretraining",
        "description": "Pretraining data of tools/transfer_benchmark.py: no voxel of the test subject.",
        "unlabeled": unlabeled, "validation": validation, "unlabeled_mr": [], "labeled": [], "labeled_mr": [],
    }  # fmt: skip
    return write_datalist(datalist, os.path.join(out, "datalist.json")), regions


def _write_grid(image: np.ndarray, label: np.ndarray, affine: np.ndarray, folder: str, stem: str) -> dict:
    os.makedirs(folder, exist_ok=True)
    paths = {"image": os.path.join(folder, f"{stem}_image.nii.gz"), "label": os.path.join(folder, f"{stem}_label.nii.gz")}
    save_nifti(image.astype(np.float32), affine, paths["image"])
    save_nifti(label.astype(np.uint8), affine, paths["label"])
    return paths


def prepare_segmentation(out: str, train: dict, test: dict, classes: dict, scale: dict, seeds: int, fractions) -> dict:
    """Axial slabs of the training subject (the labelled pool) and the test subject, on the task grid."""
    spacing, slab = scale["spacing"], scale["segmentation"]["slab"]
    image, label, affine = resample_pair(train["image"], train["label"], spacing)
    label = class_map(label, list(classes.values()))
    units, positive = [], []
    for i, (z0, z1) in enumerate(slab_windows(image.shape[2], slab)):
        shifted = affine.copy()
        shifted[:3, 3] = affine[:3, :3] @ np.array([0, 0, z0]) + affine[:3, 3]
        units.append({**_write_grid(image[..., z0:z1], label[..., z0:z1], shifted, os.path.join(out, "train"), f"slab{i:02d}"),
                      "slices": [z0, z1]})  # fmt: skip
        positive.append(bool((label[..., z0:z1] > 0).any()))
    t_image, t_label, t_affine = resample_pair(test["image"], test["label"], spacing)
    test_pair = _write_grid(t_image, class_map(t_label, list(classes.values())), t_affine, os.path.join(out, "test"), "test")
    subsets = {s: nested_fractions(positive, fractions, s) for s in range(seeds)}
    return {"units": units, "positive": positive, "test": [test_pair], "subsets": subsets}


def prepare_classification(out: str, train: dict, test: dict, classes: dict, scale: dict, seeds: int, fractions) -> dict:
    """The training subject with sparse organ-centre annotations per fraction and seed, and the test subject."""
    cfg = scale["classification"]
    image, label, affine = resample_pair(train["image"], train["label"], scale["spacing"])
    label = class_map(label, list(classes.values()))
    train_pair = _write_grid(image, label, affine, os.path.join(out, "train"), "train")
    pool = spread_points(label, len(classes), cfg["pool_per_class"])
    subsets: dict[int, dict[float, dict]] = {}
    for seed in range(seeds):
        subsets[seed] = {}
        for fraction, points in nested_points(pool, fractions, seed).items():
            path = os.path.join(out, "train", f"points_f{fraction:g}_s{seed}.nii.gz")
            write_point_map(label.shape, points, affine, path)
            subsets[seed][fraction] = {"label": path, "points": {c: len(p) for c, p in points.items()}}
    t_image, t_label, t_affine = resample_pair(test["image"], test["label"], scale["spacing"])
    test_pair = _write_grid(t_image, class_map(t_label, list(classes.values())), t_affine, os.path.join(out, "test"), "test")
    return {"image": train_pair["image"], "pool": {c: len(p) for c, p in pool.items()}, "test": [test_pair], "subsets": subsets}


# ---------------------------------------------------------------------------------------------------- pretraining
def bundle_overrides(bundle_dir: str, files: Sequence[str], overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides whose ids exist in the bundle's merged configs (method-specific ones apply where they fit)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(list(files))
    return {k: v for k, v in overrides.items() if k in parser}


def pretrain_method(bundle: SSLBundle, out: str, datalist: str, scale: dict) -> dict[str, str]:
    """Stages of one method on the benchmark's datalist (finished stages are kept); returns the stage folders."""
    from pretrain import stage_config_files

    for stage in scale["stages"]:
        stage_dir = os.path.join(out, stage)
        if os.path.isfile(os.path.join(stage_dir, "checkpoint_final.pt")) and os.path.isfile(os.path.join(stage_dir, "encoder.pt")):
            continue
        if not os.path.isfile(os.path.join(bundle.path, "configs", f"{stage}.yaml")):
            continue
        files = stage_config_files(bundle.path, stage, scale["pretrain_overlays"])
        wanted = dict(scale["pretrain_overrides"])
        if stage in scale["stage_epochs"]:
            wanted["max_epochs"] = scale["stage_epochs"][stage]
        overrides = bundle_overrides(bundle.path, files, wanted)
        overrides.update(dataset_dir=os.path.dirname(datalist), datalist=datalist, output_dir=out)
        logger.info(f"pretraining {bundle.name} {stage}")
        run_stage(bundle.path, stage, scale["pretrain_overlays"], **overrides)
    return stage_folders(out)


# ---------------------------------------------------------------------------------------------------- fine-tuning
def run_one(kind: str, init: dict, train_data: list[dict], test_data: list[dict], classes: dict, scale: dict,
            seed: int, run_dir: str, logging_file: str, finetune: str) -> dict[str, float]:  # fmt: skip
    """Fine-tune one transfer bundle on ``train_data`` for the scale's steps, then score ``test_data`` once.

    The bundle's train workflow runs one epoch of ``steps`` iterations with ``validate#dataset#data`` set to the
    test pairs and ``val_interval`` 1: its evaluator scores the final weights once, after training, with the bundle's
    own metrics (nothing is selected on the test data). Returns the metrics and the seconds taken.
    """
    from monai.bundle import ConfigWorkflow

    cfg = scale[kind]
    bundle = os.path.join(BUNDLES, f"transfer_{kind}")
    overrides = {
        "init": init["mode"], "pretrained_bundle": init["bundle"], "pretrained_dir": init["stage_dir"] or "",
        "network_settings": init["settings"], "spacing": scale["spacing"], "intensity_preset": "ct",
        "roi_size": cfg["roi_size"], "class_names": list(classes), "source_labels": [[i + 1] for i in range(len(classes))],
        "label_set": None, "output_dir": run_dir, "seed": seed, "num_workers": 0, "cache_rate": 1.0, "amp": False,
        "device": "cuda:0" if _cuda() else "cpu", "finetune": finetune, "learning_rate": cfg["learning_rate"],
        "max_epochs": 1, "epoch_length": cfg["steps"], "val_interval": 1, "batch_size": cfg["batch_size"],
        "num_samples": cfg["num_samples"], "train#dataset#data": train_data, "validate#dataset#data": test_data,
    }  # fmt: skip
    if kind == "classification":
        overrides["val_patches_per_class"] = cfg["test_per_class"]
    start = time.perf_counter()
    workflow = ConfigWorkflow(
        config_file=os.path.join(bundle, "configs", "train.yaml"),
        meta_file=os.path.join(bundle, "configs", "metadata.json"),
        logging_file=logging_file,
        workflow_type="train",
        bundle_root=bundle,
        **overrides,
    )
    workflow.initialize()
    workflow.run()
    metrics = dict(workflow.parser.get_parsed_content("validate#evaluator").state.metrics)
    workflow.finalize()
    if kind == "segmentation":
        result = {"dice": float(metrics["val_mean_dice"]), "hd95_mm": float(metrics["val_hd95"])}
    else:
        result = {"auc": float(metrics["val_auc"]), "balanced_accuracy": float(metrics["val_balanced_accuracy"])}
    result["seconds"] = time.perf_counter() - start
    return result


def task_name(kind: str, classes: dict) -> str:
    """``liver_segmentation`` (one class: its name), ``organ_segmentation``, ``organ_classification``."""
    return f"{next(iter(classes)) if len(classes) == 1 else 'organ'}_{kind}"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def initialisations(kind: str, stages: dict[str, dict[str, str]], reference: dict[str, Any]) -> list[dict]:
    """Random, then every method and stage; segmentation takes the decoder too where the stage exported one and the
    method's metadata lists it as a component."""
    inits = [{"name": "random", "method": "", "stage": "", "mode": "random", "stage_dir": "",
              "bundle": reference["bundle"], "settings": reference["settings"]}]  # fmt: skip
    for method, folders in sorted(stages.items()):
        components = read_ssl_bundle(reference["bundles"][method]).components
        for stage, folder in sorted(folders.items()):
            has_decoder = "decoder" in components and os.path.isfile(os.path.join(folder, "decoder.pt"))
            mode = "encoder+decoder" if kind == "segmentation" and has_decoder else "encoder"
            inits.append({"name": f"{method}/{stage}", "method": method, "stage": stage, "mode": mode,
                          "stage_dir": folder, "bundle": reference["bundles"][method], "settings": {}})  # fmt: skip
    return inits


def _done(path: str) -> set[tuple[str, str, float, int]]:
    if not os.path.isfile(path):
        return set()
    with open(path, encoding="utf-8") as f:
        return {(r["task"], r["init"], float(r["fraction"]), int(r["seed"])) for r in csv.DictReader(f)}


def _append(path: str, row: dict) -> None:
    new = not os.path.isfile(path)
    with open(path, "a", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RUN_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in RUN_FIELDS})


def _read_runs(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for k in ("dice", "hd95_mm", "auc", "balanced_accuracy"):
            if row.get(k) == "":
                del row[k]
            elif k in row:
                row[k] = float(row[k])
    return rows


QUIET_LOGGING = """[loggers]
keys=root
[handlers]
keys=console
[formatters]
keys=plain
[logger_root]
level=WARNING
handlers=console
[handler_console]
class=StreamHandler
level=WARNING
formatter=plain
args=(sys.stdout,)
[formatter_plain]
format=%(asctime)s - %(name)s - %(levelname)s - %(message)s
"""


# ---------------------------------------------------------------------------------------------------- main
def benchmark(
    scale: str = "demo",
    results_dir: str = "results/transfer_demo",
    methods: str | Sequence[str] | None = None,
    seeds: int | None = None,
    fractions: str | Sequence[float] | None = None,
    tasks: str | Sequence[str] = "segmentation,classification",
    datalist: str | None = None,
    profile: str = "sample",
    bundles_dir: str = BUNDLES,
    finetune: str = "full",
) -> dict[str, str]:
    """Run the benchmark at a scale (``demo``, ``paper``; ``smoke`` for tests) and write its results.

    Args:
        scale: a key of :data:`SCALES`.
        results_dir: where everything goes (resumable).
        methods: method bundle names, ``all`` for every bundle with a ``united_ssl`` section (default: the scale's).
        seeds: seeds per cell (default: the scale's).
        fractions: label fractions, e.g. ``0.1,0.25,0.5,1`` (default: the scale's).
        tasks: ``segmentation``, ``classification`` or both.
        datalist: the labelled datalist (default: the sample CT cache's).
        profile: the label set and classes, a key of :data:`PROFILES`.
        bundles_dir: where method bundles are discovered.
        finetune: ``full``, ``layerwise`` or (classification) ``linear_probe``.

    Returns:
        Paths of ``runs.csv``, ``results.md`` and the plots folder.
    """
    started = time.perf_counter()
    cfg = copy.deepcopy(SCALES[scale])
    prof = PROFILES[profile]
    seeds = int(seeds or cfg["seeds"])
    fractions = [float(f) for f in (as_list(fractions) or cfg["fractions"])]
    tasks = [t for t in as_list(tasks)]
    if datalist is None:
        from common.data import default_cache_dir

        datalist = os.path.join(default_cache_dir(), "datalist.json")
    os.makedirs(results_dir, exist_ok=True)
    logging_file = os.path.join(results_dir, "logging.conf")
    with open(logging_file, "w", encoding="utf-8") as f:
        f.write(QUIET_LOGGING)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    timing: dict[str, float] = {}

    # data
    data_dir = os.path.join(results_dir, "data")
    train, test, others = _subjects(datalist, prof["label_set"])
    pre_datalist, regions = prepare_pretraining_data(os.path.join(data_dir, "pretrain"), train, others)
    prepared = {}
    if "segmentation" in tasks:
        prepared["segmentation"] = prepare_segmentation(os.path.join(data_dir, "segmentation"), train, test,
                                                        prof["segmentation"], cfg, seeds, fractions)  # fmt: skip
    if "classification" in tasks:
        prepared["classification"] = prepare_classification(os.path.join(data_dir, "classification"), train, test,
                                                            prof["classification"], cfg, seeds, fractions)  # fmt: skip
    splits = {"train_subject": train.get("subject"), "test_subject": test.get("subject"), "pretraining_datalist": pre_datalist,
              "pretraining_regions": regions, "spacing": cfg["spacing"], "tasks": prepared}  # fmt: skip
    with open(os.path.join(data_dir, "splits.json"), "w", encoding="utf-8") as f:
        json.dump(splits, f, indent=1, default=str)
    timing["data_seconds"] = time.perf_counter() - started

    # pretraining
    wanted = methods if methods is not None else cfg["methods"]
    found = discover_ssl_bundles(bundles_dir)
    chosen = found if wanted == "all" or as_list(wanted) == ["all"] else [b for b in found if b.name in as_list(wanted)]
    missing = set(as_list(wanted)) - {b.name for b in found} - {"all"}
    if missing:
        raise ValueError(f"no method bundle named {sorted(missing)} in {bundles_dir} (found {[b.name for b in found]}).")
    stages, failures = {}, {}
    for bundle in chosen:
        t0 = time.perf_counter()
        try:
            stages[bundle.name] = pretrain_method(bundle, os.path.join(results_dir, "pretrain", bundle.name), pre_datalist, cfg)
        except Exception as error:  # a method that cannot run at this scale is reported, the others go on
            logger.exception(f"pretraining {bundle.name} failed")
            failures[bundle.name] = f"{type(error).__name__}: {error}"
        timing[f"pretrain_{bundle.name}_seconds"] = time.perf_counter() - t0
    if not stages:
        raise RuntimeError(f"no method pretrained: {failures}")
    learning = learning_report(*[os.path.join(results_dir, "pretrain", m) for m in stages],
                               out_dir=os.path.join(results_dir, "learning"))  # fmt: skip

    # fine-tuning
    first = sorted(stages)[0]
    reference = {
        "bundle": read_ssl_bundle(os.path.join(bundles_dir, first)).path,
        "settings": json.loads(Path(stages[first][sorted(stages[first])[0]], "run.json").read_text(encoding="utf-8"))["settings"],
        "bundles": {b.name: b.path for b in chosen},
    }
    runs_csv = os.path.join(results_dir, "runs.csv")
    done = _done(runs_csv)
    for kind in tasks:
        t0 = time.perf_counter()
        task = task_name(kind, prof[kind])
        classes = prof[kind]
        for init in initialisations(kind, stages, reference):
            for fraction in fractions:
                for seed in range(seeds):
                    if (task, init["name"], fraction, seed) in done:
                        continue
                    subset = prepared[kind]["subsets"][seed][fraction]
                    if kind == "segmentation":
                        units = prepared[kind]["units"]
                        train_data = [{"image": units[i]["image"], "label": units[i]["label"]} for i in subset]
                        labelled = len(subset)
                    else:
                        train_data = [{"image": prepared[kind]["image"], "label": subset["label"]}]
                        labelled = sum(subset["points"].values())
                    run_dir = os.path.join(results_dir, "runs", task, init["name"].replace("/", "_"), f"f{fraction:g}_s{seed}")
                    metrics = run_one(kind, init, train_data, prepared[kind]["test"], classes, cfg, seed, run_dir,
                                      logging_file, finetune)  # fmt: skip
                    row = {"task": task, "init": init["name"], "method": init["method"], "stage": init["stage"],
                           "init_mode": init["mode"], "fraction": fraction, "seed": seed, "labelled_units": labelled,
                           **metrics}  # fmt: skip
                    _append(runs_csv, row)
                    logger.info(f"{task} {init['name']} {fraction:g} seed {seed}: " +
                                ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))  # fmt: skip
        timing[f"{kind}_seconds"] = time.perf_counter() - t0

    # results
    rows = _read_runs(runs_csv)
    metrics = {**METRICS["segmentation"], **METRICS["classification"]}
    summaries = summarise(rows, metrics)
    with open(os.path.join(results_dir, "summary.csv"), "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(summaries[0].as_dict()))
        writer.writeheader()
        writer.writerows(s.as_dict() for s in summaries)
    plots, tables = os.path.join(results_dir, "plots"), []
    for task in sorted({s.task for s in summaries}):
        kind = "segmentation" if task.endswith("segmentation") else "classification"
        for metric, higher in METRICS[kind].items():
            table = markdown_table(summaries, task, metric, METRIC_LABELS[metric])
            if table:
                tables.append(table)
                plot_curves(summaries, task, metric, os.path.join(plots, f"{task}_{metric}.png"), METRIC_LABELS[metric], higher)
    timing["total_seconds"] = time.perf_counter() - started
    with open(os.path.join(results_dir, "timing.json"), "w", encoding="utf-8") as f:
        json.dump({**timing, "failures": failures}, f, indent=2)
    header = (
        f"# Transfer benchmark ({scale} scale)\n\nTest subject {test.get('subject')} (never pretrained or trained on); "
        f"training subject {train.get('subject')}; grid {cfg['spacing']} mm; {seeds} seeds; methods "
        f"{sorted(stages)}{'; failed: ' + json.dumps(failures) if failures else ''}. Wall time "
        f"{timing['total_seconds'] / 60:.1f} min.\n\n## What pretraining learned\n\n" + Path(learning["md"]).read_text(encoding="utf-8") + "\n"
    )
    with open(os.path.join(results_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(header + "## Annotation efficiency\n\n" + "\n".join(tables))
    print(Path(results_dir, "results.md").read_text(encoding="utf-8"))
    return {"runs": runs_csv, "results": os.path.join(results_dir, "results.md"), "plots": plots}


if __name__ == "__main__":
    fire.Fire(benchmark, serialize=lambda _: None)
