"""tools/compare_stepwise_joint.py end to end at smoke scale on phantoms (both arms, seeds, target-task scores,
divergence counted rather than crashing), and tools/run_stability.py's divergence rules on hand-written logs."""

from __future__ import annotations

import json
import math
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))

import compare_stepwise_joint as csj  # noqa: E402
import run_stability  # noqa: E402

from common.data import write_phantom_dataset  # noqa: E402

ROTATION = os.path.join(REPO_ROOT, "bundles", "rotation")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_phantom_dataset(str(tmp_path_factory.mktemp("phantoms")), num_volumes=3, shape=(48, 48, 40))


def _log(folder, lines: list[dict]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metrics.jsonl", "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")  # NaN and Infinity as Python's json writes them
    return str(folder)


def test_divergence_rules(tmp_path) -> None:
    calm = _log(tmp_path / "s1", [{"epoch": e, "split": "train", "loss": 2.0 / e, "loss_dis": 2.0 / e} for e in (1, 2, 3)])
    # stage 2's total loss starts far above stage 1's (w_res * L_res is added): no divergence across the boundary
    jump = _log(tmp_path / "s2", [{"epoch": e, "split": "train", "loss": 50.0 - e} for e in (1, 2)])
    assert run_stability.divergence_reason([calm, jump]) is None
    exploding = _log(tmp_path / "s3", [{"epoch": 1, "split": "train", "loss": 1.0}, {"epoch": 2, "split": "train", "loss": 10.5}])
    assert "exploded" in run_stability.divergence_reason([calm, exploding])
    assert run_stability.divergence_reason([calm, exploding], explode_factor=11.0) is None
    nan_val = _log(tmp_path / "s4", [{"epoch": 1, "split": "train", "loss": 1.0},
                                     {"epoch": 1, "split": "validation", "val_loss_res": float("nan")}])  # fmt: skip
    assert run_stability.divergence_reason([nan_val]).startswith("s4: val_loss_res = nan")
    # a non-finite diagnostic that is not a loss term is no divergence
    other = _log(tmp_path / "s5", [{"epoch": 1, "split": "train", "loss": 1.0, "dis_accuracy": float("inf")}])
    assert run_stability.divergence_reason([other]) is None
    x, y, ends = run_stability.stage_curve([calm, jump], "loss")
    assert x == [1, 2, 3, 4, 5] and y[3:] == [49.0, 48.0] and ends == [3, 5]


def test_epochs_default_the_joint_arm_to_the_stages_sum() -> None:
    assert csj.parse_epochs("stage1=4,stage2=2", {"stage3": 1}) == {"stage1": 4, "stage2": 2, "stage3": 1, "joint": 7}
    assert csj.parse_epochs({"joint": 3}, {"stage1": 1, "stage2": 1, "stage3": 1})["joint"] == 3
    assert csj.parse_epochs(None, {}) == {}
    assert csj.parse_epochs("stage1=3,stage2=2,stage3=1", {"stage1": 150, "joint": 50})["joint"] == 6
    with pytest.raises(ValueError, match="stage4=2"):
        csj.parse_epochs("stage4=2", {})


def test_2d_bundles_are_refused_before_any_work(tmp_path) -> None:
    with pytest.raises(ValueError, match="spatial_dims is 2"):
        csj.compare(os.path.join(REPO_ROOT, "bundles", "dira_2d"), scale="smoke", results_dir=str(tmp_path / "cmp"))
    assert not os.path.exists(tmp_path / "cmp")


def test_smoke_comparison_scores_both_arms_and_counts_a_forced_divergence(phantoms: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative results folder, as the docs' command gives it
    out = str(tmp_path / "cmp")
    kwargs = dict(scale="smoke", profile="phantom", datalist=phantoms, results_dir="cmp", tasks="segmentation")
    # seed 0: both arms train and are fine-tuned
    paths = csj.compare(ROTATION, seeds=1, **kwargs)
    first = json.load(open(paths["json"]))
    assert first["divergence"] == {"stepwise": {"diverged": 0, "failed": 0, "runs": 1},
                                   "joint": {"diverged": 0, "failed": 0, "runs": 1}}  # fmt: skip
    scores = {r["init"]: r for r in first["transfer_runs"]}
    assert set(scores) == {"stepwise", "joint", "random"}
    assert {k: r["init_mode"] for k, r in scores.items()} == {"stepwise": "encoder+decoder", "joint": "encoder+decoder", "random": "random"}
    (dice,) = [s for s in first["summary"] if s["metric"] == "dice"]
    assert dice["pairs"] == 1
    assert dice["stepwise_minus_joint"] == pytest.approx(scores["stepwise"]["dice"] - scores["joint"]["dice"])

    # seed 1 with a joint learning rate that makes every weight ~1e30 after one step: the next loss is not finite.
    # Seed 0's finished runs are kept (resumed), so seed 1's joint run is the only one that diverges.
    mtime = os.path.getmtime(os.path.join(out, "pretrain", "seed0", "joint", "joint", "encoder.pt"))
    paths = csj.compare(ROTATION, seeds=2, joint_overrides={"learning_rate": 1.0e30}, **kwargs)
    assert os.path.getmtime(os.path.join(out, "pretrain", "seed0", "joint", "joint", "encoder.pt")) == mtime
    result = json.load(open(paths["json"]))
    assert result["seeds"] == [0, 1]
    runs = {(r["arm"], r["seed"]): r for r in result["pretraining"]}
    assert {k: r["status"] for k, r in runs.items()} == {
        ("stepwise", 0): "ok", ("joint", 0): "ok", ("stepwise", 1): "ok", ("joint", 1): "diverged"}  # fmt: skip
    assert runs[("joint", 1)]["reason"].startswith("joint: NonFiniteLossError: non-finite loss at epoch 1")
    assert result["divergence"] == {"stepwise": {"diverged": 0, "failed": 0, "runs": 2},
                                    "joint": {"diverged": 1, "failed": 0, "runs": 2}}  # fmt: skip
    # stepwise ran all three stages with the seed in their run records; the final stage is stage 3
    for s in (0, 1):
        stage3 = runs[("stepwise", s)]["final_stage_dir"]
        assert stage3.endswith(os.path.join(f"seed{s}", "stepwise", "stage3"))
        for stage in ("stage1", "stage2", "stage3"):
            record = json.load(open(os.path.join(os.path.dirname(stage3), stage, "run.json")))
            assert record["settings"]["seed"] == s
    # target-task scores: finite, every finished run once (seed 0's not repeated), none from the diverged run
    scores = {(r["init"], r["seed"]): r for r in result["transfer_runs"]}
    assert set(scores) == {("stepwise", 0), ("joint", 0), ("random", 0), ("stepwise", 1), ("random", 1)}
    assert all(0.0 <= r["dice"] <= 1.0 and math.isfinite(r["dice"]) for r in scores.values())
    assert len(open(os.path.join(out, "transfer_runs.jsonl")).read().splitlines()) == 5
    (dice,) = [s for s in result["summary"] if s["metric"] == "dice"]
    assert len(dice["stepwise_values"]) == 2 and len(dice["joint_values"]) == 1 and dice["pairs"] == 1
    table = open(paths["markdown"]).read()
    assert "| organ_segmentation | Dice | 100 % |" in table
    assert "| stepwise | 2 | 0/2 | 0/2 |" in table and "| joint | 2 | 1/2 | 0/2 |" in table
    assert "- joint seed 1: diverged: joint: NonFiniteLossError" in table
    assert {"losses.png", "losses_stepwise_seed0.png", "losses_stepwise_seed1.png", "losses_joint_seed0.png"} <= set(
        os.listdir(paths["plots"])
    )
