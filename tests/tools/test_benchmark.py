"""tools/benchmark.py: the bundle's trainer and the plain loop alternate, and the report has every figure."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))

import benchmark  # noqa: E402
from plain_loop import PlainLoop  # noqa: E402

from common.data import write_phantom_dataset  # noqa: E402
from common.engines import UnitedObjective  # noqa: E402
from common.networks import ClassificationHead, ConditionalPatchCritic, GenesisDecoder, GenesisEncoder, UnitedModel  # noqa: E402
from common.tasks import PretextClassificationTask  # noqa: E402


def test_report_of_an_adversarial_stage(tmp_path, capsys) -> None:
    datalist = write_phantom_dataset(str(tmp_path / "data"), num_volumes=2, shape=(36, 36, 34))
    out = str(tmp_path / "bench.json")
    # smoke overlay, 3 iterations of each loop (1 not counted), switching every iteration: seconds, every figure
    report = benchmark.benchmark(os.path.join(REPO_ROOT, "bundles", "rotation"), overlays="smoke", stages="3", iterations=2,
                                 warmup=1, chunk=1, output_json=out, datalist=datalist)  # fmt: skip
    stage = report["stages"]["stage3"]
    assert stage["iterations"] == 2 and stage["ratio_bundle_over_plain"] > 0
    ratio = stage["step_seconds"]["median"] / stage["plain_step_seconds"]["median"]  # of the unrounded medians
    assert stage["ratio_bundle_over_plain"] == pytest.approx(ratio, abs=1e-3)
    assert stage["parameters"]["adversary"] > 0 and set(stage["parameters"]) >= {"encoder", "head", "decoder"}
    assert set(stage["split_seconds"]) == set(benchmark.PHASES) and stage["split_seconds"]["critic"] > 0
    assert stage["peak_memory_mb"] > 0 and stage["data_pipeline_samples_per_second"] > 0
    assert json.load(open(out))["stages"]["stage3"]["cubes_per_step"] == stage["cubes_per_step"]
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("ratio bundle/plain: ")


def test_the_plain_loop_trains_the_same_components() -> None:
    model = UnitedModel(GenesisEncoder(3, 1, 2, 3), ClassificationHead(3, 16, 4, None, None), GenesisDecoder(3, 1, 2, 3))
    critic = ConditionalPatchCritic(3, base_channels=2, num_levels=3)
    objective = UnitedObjective(PretextClassificationTask(), 1.0, 10.0, 1.0, adversary=critic)
    batch = {"image": torch.rand(2, 1, 16, 16, 16), "target": torch.rand(2, 1, 16, 16, 16), "label": torch.tensor([0, 1])}
    before = {n: p.clone() for n, p in list(model.named_parameters()) + list(critic.named_parameters())}
    loop = PlainLoop(model, objective, torch.optim.SGD(model.parameters(), 0.1), torch.optim.SGD(critic.parameters(), 0.1), 1, 2, [batch])
    assert loop.step() > 0 and loop.step() > 0
    after = dict(list(model.named_parameters()) + list(critic.named_parameters()))
    assert all(not torch.equal(before[n], after[n]) for n in ("encoder.levels.0.0.conv.weight", "encoder.levels.0.0.conv.weight"))
    assert not torch.equal(before["score.conv.weight"], after["score.conv.weight"])
