"""Stepwise (stage 1 -> 2 -> 3) against joint (D+R+A from scratch) pretraining of one method, over seeds.

Guo et al. (MedIA 2024) report that integrating discriminative, restorative and adversarial learning **stepwise**
transfers better and trains more stably than optimising all three from scratch at once. This tool measures both
for any method bundle at a chosen scale:

Usage (from the repository root, after ``python tools/sample_data.py``)::

    python tools/compare_stepwise_joint.py bundles/rotation --seeds 2 --results_dir results/stepwise_vs_joint \\
        --epochs "stage1=20,stage2=10,stage3=5,joint=35"
    python tools/compare_stepwise_joint.py bundles/jigsaw --scale paper --seeds 5      # GPUs
    python tools/compare_stepwise_joint.py bundles/rotation --learning_rate 3e-3       # any id: both arms

For every seed the two **arms** pretrain on the transfer benchmark's pretraining datalist (the test subject never
seen; ``tools/transfer_benchmark.py``) with ``seed`` set to the seed:

* ``stepwise``: ``stage1.yaml``, ``stage2.yaml``, ``stage3.yaml`` in order, each initialised from the previous one;
* ``joint``: ``joint.yaml`` (encoder, decoder and adversary from scratch with stage 3's weights), by default for as
  many epochs as the three stages together (the same number of passes over the data).

Then the benchmark's target tasks (organ segmentation, organ patch classification) are fine-tuned from each arm's
final weights (``stage3``, ``joint``) and from random weights, with the benchmark's own functions and the same
labelled subset and training seed per seed (a paired comparison). A pretraining run that stops with a non-finite
loss, logs one, or whose loss explodes (``tools/run_stability.py``) counts as **diverged**: it is not fine-tuned and
the comparison goes on. A run that fails otherwise (a configuration error) is reported as failed, also without
stopping the others.

Writes into ``results_dir``: ``comparison.md`` (the table), ``comparison.json`` (every run, every score, the
summaries), ``plots/losses.png`` (loss curves of both arms over seeds), ``plots/losses_<arm>_seed<k>.png`` (each run
per term with its stages, ``tools/plot_run.py``), ``learning/`` (what each run's final stage learned), the
transfer runs under ``runs/`` and ``data/`` as the benchmark writes them. Finished pretraining stages and fine-tuning
runs are kept, so an interrupted comparison resumes.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import fire

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transfer_benchmark as tb  # noqa: E402
from learning_report import learning_report  # noqa: E402
from plot_run import plot_losses  # noqa: E402
from pretrain import as_list, run_stage, stage_config_files  # noqa: E402
from run_stability import divergence_reason, plot_stability  # noqa: E402

from common.engines import NonFiniteLossError  # noqa: E402
from common.transfer import read_ssl_bundle  # noqa: E402
from common.transfer.statistics import summarise  # noqa: E402

logger = logging.getLogger("compare_stepwise_joint")

#: The two arms: the stage configs each runs in order.
ARMS: dict[str, list[str]] = {"stepwise": ["stage1", "stage2", "stage3"], "joint": ["joint"]}


def parse_epochs(epochs: str | Mapping[str, int] | None, default: Mapping[str, int]) -> dict[str, int]:
    """``"stage1=20,stage2=10"`` (or a dict) merged over ``default`` (the scale's).

    ``joint`` is the three stages' sum (the same number of passes over the data) unless given in ``epochs``; stages
    without a value keep the bundle's (and overlay's) ``max_epochs``, and then ``joint`` keeps its default too.
    """
    given: dict[str, int] = {}
    if isinstance(epochs, Mapping):
        given = {str(k): int(v) for k, v in epochs.items()}
    elif epochs:
        for item in as_list(epochs):
            key, _, value = str(item).partition("=")
            if key not in ARMS["stepwise"] + ARMS["joint"] or not value:
                raise ValueError(f"--epochs item {item!r}: expected stage1=N, stage2=N, stage3=N or joint=N.")
            given[key] = int(value)
    out = {**default, **given}
    if "joint" not in given and all(s in out for s in ARMS["stepwise"]):
        out["joint"] = sum(out[s] for s in ARMS["stepwise"])
    return out


def _finished(stage_dir: str) -> bool:
    return all(os.path.isfile(os.path.join(stage_dir, f)) for f in ("checkpoint_final.pt", "encoder.pt", "run.json"))


def _non_finite(error: BaseException | None) -> NonFiniteLossError | None:
    """The :class:`NonFiniteLossError` that ``error`` is or was raised from (MONAI wraps errors raised inside a config
    expression in a ``RuntimeError``), else ``None``."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, NonFiniteLossError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def pretrain_arm(bundle_dir: str, arm: str, out: str, overlays: Sequence[str], overrides: Mapping[str, Any],
                 epochs: Mapping[str, int], explode_factor: float) -> dict[str, Any]:  # fmt: skip
    """Pretrain one arm's stages in order into ``out``; never raises for a diverged or failed run.

    Returns:
        ``{"stages": {stage: folder}, "status": "ok" | "diverged" | "failed", "reason": str | None,
        "seconds": float}``; the stages after a diverged or failed one are not run.
    """
    start = time.perf_counter()
    stages: dict[str, str] = {}
    status, reason = "ok", None
    for stage in ARMS[arm]:
        stage_dir = os.path.join(out, stage)
        stages[stage] = stage_dir
        if _finished(stage_dir):
            continue
        shutil.rmtree(stage_dir, ignore_errors=True)  # an interrupted or diverged stage restarts from its beginning
        values = dict(overrides)
        if stage in epochs:
            values["max_epochs"] = epochs[stage]
        values["output_dir"] = out
        try:
            run_stage(bundle_dir, stage, list(overlays), **values)
        except Exception as error:  # the comparison goes on: a diverged run is a result, not a crash
            cause = _non_finite(error)
            status = "diverged" if cause is not None else "failed"
            shown = cause if cause is not None else error
            reason = f"{stage}: {type(shown).__name__}: {(str(shown).splitlines() or [''])[0].split('. ')[0]}"
            logger.warning(f"{arm} {stage} {status}: {reason}")
            if status == "failed":
                logger.warning(traceback.format_exc())
            break
    if status == "ok":
        found = divergence_reason(list(stages.values()), explode_factor)
        if found:
            status, reason = "diverged", found
    return {"stages": stages, "status": status, "reason": reason, "seconds": time.perf_counter() - start}


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cell(values: Sequence[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "-"
    if len(finite) == 1:
        return f"{finite[0]:.3f}"
    mean = sum(finite) / len(finite)
    sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))
    return f"{mean:.3f} ± {sd:.3f}"


def comparison_table(rows: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]], seeds: int) -> tuple[str, list[dict]]:
    """The Markdown tables (transfer scores; stability) and the summary rows behind them.

    Transfer: one row per task, metric and label fraction with mean ± sd over the seeds of stepwise, joint and
    random, and stepwise minus joint paired by seed (positive = stepwise better, whatever the metric's direction),
    with the paired t-test p-value (:func:`common.transfer.statistics.summarise`, joint as the baseline).
    """
    metrics = {**tb.METRICS["segmentation"], **tb.METRICS["classification"]}
    against_joint = {(s.task, s.fraction, s.metric): s for s in summarise(rows, metrics, baseline="joint") if s.init == "stepwise"}
    by_init: dict[tuple, dict[str, list[float]]] = {}
    for row in rows:
        for metric in metrics:
            if metric in row:
                key = (row["task"], float(row["fraction"]), metric)
                by_init.setdefault(key, {}).setdefault(row["init"], []).append(float(row[metric]))
    summary = []
    lines = [
        "| task | metric | labels | stepwise (stage 3) | joint | random | stepwise − joint (paired) | p | pairs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(by_init):
        task, fraction, metric = key
        cells = by_init[key]
        s = against_joint.get(key)
        gain = s.gain if s is not None else math.nan
        p = s.p_value if s is not None else math.nan
        pairs = len({int(r["seed"]) for r in rows if r["task"] == task and float(r["fraction"]) == fraction and r["init"] == "stepwise"}
                    & {int(r["seed"]) for r in rows if r["task"] == task and float(r["fraction"]) == fraction and r["init"] == "joint"})  # fmt: skip
        lines.append(
            f"| {task} | {tb.METRIC_LABELS[metric]} | {100 * fraction:g} % | {_cell(cells.get('stepwise', []))} | "
            f"{_cell(cells.get('joint', []))} | {_cell(cells.get('random', []))} | "
            f"{'-' if math.isnan(gain) else f'{gain:+.3f}'} | {'-' if math.isnan(p) else f'{p:.2f}'} | {pairs} |"
        )
        summary.append({"task": task, "fraction": fraction, "metric": metric, "higher_is_better": metrics[metric],
                        **{f"{init}_values": [_finite_or_none(v) for v in cells.get(init, [])] for init in ("stepwise", "joint", "random")},
                        "stepwise_minus_joint": _finite_or_none(gain), "p_value": _finite_or_none(p), "pairs": pairs})  # fmt: skip
    stability = [
        "| arm | runs | diverged | failed | final training loss (mean over finished runs) | pretraining minutes (sum) |",
        "|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        mine = [r for r in runs if r["arm"] == arm]
        finals = [r["final_loss"] for r in mine if r["status"] == "ok" and r["final_loss"] is not None]
        stability.append(
            f"| {arm} | {len(mine)} | {sum(r['status'] == 'diverged' for r in mine)}/{seeds} | "
            f"{sum(r['status'] == 'failed' for r in mine)}/{seeds} | {_cell(finals)} | {sum(r['seconds'] for r in mine) / 60:.1f} |"
        )
    return "\n".join(lines) + "\n\n" + "\n".join(stability) + "\n", summary


def _final_loss(stage_dir: str) -> float | None:
    from run_stability import stage_curve

    _, ys, _ = stage_curve([stage_dir], "loss")
    return ys[-1] if ys else None


def compare(
    bundle: str,
    scale: str = "demo",
    seeds: int = 2,
    epochs: str | Mapping[str, int] | None = None,
    overlays: str | Sequence[str] | None = None,
    fractions: str | Sequence[float] = "1.0",
    tasks: str | Sequence[str] = "segmentation,classification",
    results_dir: str | None = None,
    datalist: str | None = None,
    profile: str = "sample",
    stepwise_overrides: Mapping[str, Any] | None = None,
    joint_overrides: Mapping[str, Any] | None = None,
    explode_factor: float = 10.0,
    finetune: str = "full",
    **overrides: Any,
) -> dict[str, str]:
    """Run the stepwise and the joint arm of a method bundle over seeds and compare transfer and stability.

    Args:
        bundle: the method bundle folder, e.g. ``bundles/rotation``.
        scale: a scale of ``tools/transfer_benchmark.py`` (``demo``, ``paper``; ``smoke`` for tests): the grid, the
            pretraining overlays and overrides (those the bundle has), the stage epochs and the fine-tuning budget.
        seeds: pretraining seeds ``0 .. seeds-1``; seed ``k`` also picks the labelled subset and the fine-tuning seed.
        epochs: ``"stage1=N,stage2=N,stage3=N,joint=N"`` over the scale's; ``joint`` defaults to the three stages'
            sum.
        overlays: pretraining overlays instead of the scale's (``demo``, ``smoke``, a path).
        fractions: label fractions of the target tasks, e.g. ``0.25,1``.
        tasks: ``segmentation``, ``classification`` or both.
        results_dir: output folder (default ``results/stepwise_vs_joint/<bundle name>``).
        datalist: the labelled datalist (default: the sample CT cache's).
        profile: the label set and classes, a key of the benchmark's ``PROFILES``.
        stepwise_overrides, joint_overrides: overrides for one arm only (e.g. a learning rate).
        explode_factor: a stage whose training loss ends above this multiple of its first epoch's has diverged.
        finetune: ``full``, ``layerwise`` or (classification) ``linear_probe``.
        overrides: bundle overrides for every stage of both arms (``--learning_rate 3e-3``).

    Returns:
        Paths of ``comparison.md``, ``comparison.json`` and the plots folder.
    """
    started = time.perf_counter()
    bundle_dir = os.path.normpath(bundle)
    name = os.path.basename(bundle_dir)
    ssl = read_ssl_bundle(bundle_dir)
    with open(os.path.join(bundle_dir, "configs", "metadata.json"), encoding="utf-8") as f:
        dims = json.load(f)["united_ssl"].get("spatial_dims", 3)
    if dims != 3:
        raise ValueError(f"{bundle_dir}: united_ssl.spatial_dims is {dims}; the transfer benchmark's target tasks "
                         "(tools/transfer_benchmark.py) are 3D, so only 3D method bundles can be compared.")  # fmt: skip
    cfg = copy.deepcopy(tb.SCALES[scale])
    prof = tb.PROFILES[profile]
    overlays = as_list(overlays) if overlays is not None else list(cfg["pretrain_overlays"])
    fractions = [float(f) for f in as_list(fractions)]
    tasks = as_list(tasks)
    seeds = int(seeds)
    stage_epochs = parse_epochs(epochs, cfg["stage_epochs"])
    results_dir = results_dir or os.path.join("results", "stepwise_vs_joint", name)
    if datalist is None:
        from common.data import default_cache_dir

        datalist = os.path.join(default_cache_dir(), "datalist.json")
    os.makedirs(results_dir, exist_ok=True)
    logging_file = os.path.join(results_dir, "logging.conf")
    with open(logging_file, "w", encoding="utf-8") as f:
        f.write(tb.QUIET_LOGGING)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    # data: the benchmark's leak-free splits
    data_dir = os.path.join(results_dir, "data")
    train, test, others = tb._subjects(datalist, prof["label_set"])
    pre_datalist, _ = tb.prepare_pretraining_data(os.path.join(data_dir, "pretrain"), train, others)
    prepared = {}
    if "segmentation" in tasks:
        prepared["segmentation"] = tb.prepare_segmentation(os.path.join(data_dir, "segmentation"), train, test,
                                                           prof["segmentation"], cfg, seeds, fractions)  # fmt: skip
    if "classification" in tasks:
        prepared["classification"] = tb.prepare_classification(os.path.join(data_dir, "classification"), train, test,
                                                               prof["classification"], cfg, seeds, fractions)  # fmt: skip

    # pretraining: both arms per seed
    shared = tb.bundle_overrides(bundle_dir, stage_config_files(bundle_dir, "stage1", overlays), cfg["pretrain_overrides"])
    shared.update(overrides)
    shared.update(dataset_dir=os.path.dirname(pre_datalist), datalist=pre_datalist)
    per_arm = {"stepwise": dict(stepwise_overrides or {}), "joint": dict(joint_overrides or {})}
    runs: list[dict[str, Any]] = []
    for seed in range(seeds):
        for arm in ARMS:
            logger.info(f"pretraining {name} {arm}, seed {seed}")
            values = {**shared, **per_arm[arm], "seed": seed}
            out = os.path.join(results_dir, "pretrain", f"seed{seed}", arm)
            result = pretrain_arm(bundle_dir, arm, out, overlays, values, stage_epochs, explode_factor)
            last = result["stages"][ARMS[arm][-1]]
            runs.append({"arm": arm, "seed": seed, "status": result["status"], "reason": result["reason"],
                         "seconds": result["seconds"], "final_stage_dir": last,
                         "final_loss": _finite_or_none(_final_loss(last)) if result["status"] == "ok" else None})  # fmt: skip
            logger.info(f"{arm} seed {seed}: {result['status']}{' (' + result['reason'] + ')' if result['reason'] else ''}")

    # stability plots and what the final stages learned
    plots = os.path.join(results_dir, "plots")
    os.makedirs(plots, exist_ok=True)
    stage_lists = {arm: {r["seed"]: [os.path.join(os.path.dirname(r["final_stage_dir"]), s) for s in ARMS[arm]]
                         for r in runs if r["arm"] == arm} for arm in ARMS}  # fmt: skip
    diverged = {arm: {r["seed"]: r["status"] == "diverged" for r in runs if r["arm"] == arm} for arm in ARMS}
    written = [plot_stability(stage_lists, diverged, os.path.join(plots, "losses.png"))]
    for arm, by_seed in stage_lists.items():
        for seed, dirs in by_seed.items():
            logged = [d for d in dirs if os.path.isfile(os.path.join(d, "metrics.jsonl"))]
            if logged:
                written.append(plot_losses(logged, os.path.join(plots, f"losses_{arm}_seed{seed}.png")))
    finished = [r for r in runs if r["status"] == "ok"]
    learning_md = ""
    if finished:
        learning = learning_report(*[os.path.dirname(r["final_stage_dir"]) for r in finished], out_dir=os.path.join(results_dir, "learning"))
        learning_md = open(learning["md"], encoding="utf-8").read()

    # fine-tuning from each finished arm and from random weights, paired by seed
    rows: list[dict[str, Any]] = []
    done_path = os.path.join(results_dir, "transfer_runs.jsonl")
    done = {}
    if os.path.isfile(done_path):
        with open(done_path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                done[(row["task"], row["init"], row["fraction"], row["seed"], row["stage_dir"])] = row
    for kind in tasks:
        classes = prof[kind]
        task = tb.task_name(kind, classes)
        for run in [{"arm": "random", "seed": s, "status": "ok", "final_stage_dir": ""} for s in range(seeds)] + runs:
            if run["status"] != "ok":
                continue
            seed = run["seed"]
            if run["arm"] == "random":
                reference_dir = next((r["final_stage_dir"] for r in finished), None)
                if reference_dir is None:
                    continue  # no finished run to take the network settings from
                settings = json.load(open(os.path.join(reference_dir, "run.json"), encoding="utf-8"))["settings"]
                init = {"mode": "random", "bundle": bundle_dir, "stage_dir": "", "settings": settings}
            else:
                folder = run["final_stage_dir"]
                has_decoder = "decoder" in ssl.components and os.path.isfile(os.path.join(folder, "decoder.pt"))
                mode = "encoder+decoder" if kind == "segmentation" and has_decoder else "encoder"
                init = {"mode": mode, "bundle": bundle_dir, "stage_dir": folder, "settings": {}}
            for fraction in fractions:
                key = (task, run["arm"], fraction, seed, init["stage_dir"])
                if key in done:
                    rows.append(done[key])
                    continue
                subset = prepared[kind]["subsets"][seed][fraction]
                if kind == "segmentation":
                    units = prepared[kind]["units"]
                    train_data = [{"image": units[i]["image"], "label": units[i]["label"]} for i in subset]
                else:
                    train_data = [{"image": prepared[kind]["image"], "label": subset["label"]}]
                run_dir = os.path.join(results_dir, "runs", task, run["arm"], f"f{fraction:g}_s{seed}")
                metrics = tb.run_one(kind, init, train_data, prepared[kind]["test"], classes, cfg, seed, run_dir,
                                     logging_file, finetune)  # fmt: skip
                row = {"task": task, "init": run["arm"], "init_mode": init["mode"], "fraction": fraction, "seed": seed,
                       "stage_dir": init["stage_dir"], **metrics}  # fmt: skip
                with open(done_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
                rows.append(row)
                logger.info(f"{task} {run['arm']} {fraction:g} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))

    # report
    table, summary = comparison_table(rows, runs, seeds)
    minutes = (time.perf_counter() - started) / 60
    header = (
        f"# Stepwise vs joint: {name} ({scale} scale)\n\n"
        f"{seeds} seeds; overlays {overlays}; epochs {stage_epochs}; overrides {json.dumps(overrides, default=str)}; "
        f"stepwise-only {json.dumps(per_arm['stepwise'], default=str)}; joint-only {json.dumps(per_arm['joint'], default=str)}; "
        f"test subject {test.get('subject')}; grid {cfg['spacing']} mm. Wall time {minutes:.1f} min.\n\n"
    )
    diverged_lines = "".join(f"- {r['arm']} seed {r['seed']}: {r['status']}: {r['reason']}\n" for r in runs if r["status"] != "ok")
    report = (header + "## Transfer (target tasks, fine-tuned from the final stage)\n\n" + table
              + ("\n" + diverged_lines if diverged_lines else "")
              + "\n![loss curves](plots/losses.png)\n"
              + ("\n## What the final stages learned\n\n" + learning_md if learning_md else ""))  # fmt: skip
    md_path = os.path.join(results_dir, "comparison.md")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(report)
    json_path = os.path.join(results_dir, "comparison.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump({
            "bundle": name, "scale": scale, "seeds": list(range(seeds)), "arms": {a: s for a, s in ARMS.items()},
            "epochs": stage_epochs, "overlays": overlays, "overrides": overrides, "arm_overrides": per_arm,
            "fractions": fractions, "tasks": tasks, "explode_factor": explode_factor,
            "pretraining": runs,
            "divergence": {arm: {"diverged": sum(r["status"] == "diverged" for r in runs if r["arm"] == arm),
                                 "failed": sum(r["status"] == "failed" for r in runs if r["arm"] == arm),
                                 "runs": sum(r["arm"] == arm for r in runs)} for arm in ARMS},
            "transfer_runs": [{k: _finite_or_none(v) for k, v in r.items()} for r in rows],
            "summary": summary, "plots": written, "minutes": minutes,
        }, f, indent=1, default=str)  # fmt: skip
    print(report)
    return {"markdown": md_path, "json": json_path, "plots": plots}


if __name__ == "__main__":
    fire.Fire(compare, serialize=lambda _: None)
