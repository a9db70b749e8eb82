"""The plug-in point: a second method defined only here runs through the same trainer and stages unchanged.

A method is a proxy transform plus a discriminative task. This one inverts the intensities of half of the
cubes and asks the head whether the cube was inverted, while the decoder restores the original. Nothing in
``common`` or the trainer knows about it.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from conftest import run
from monai.transforms import MapTransform, Randomizable

from common.tasks import DiscriminativeTask


class RandInvertd(Randomizable, MapTransform):
    """Invert ``image`` (``1 - x``) with probability 0.5; ``inverted`` says whether; ``target`` is the original."""

    def __init__(self, keys: str = "image") -> None:
        MapTransform.__init__(self, keys)
        self._invert = False

    def randomize(self, data: Any = None) -> None:
        self._invert = bool(self.R.rand() < 0.5)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        self.randomize()
        for key in self.key_iterator(d):
            d["target"] = torch.as_tensor(d[key]).clone()
            d[key] = 1.0 - d["target"] if self._invert else d["target"]
        d["inverted"] = torch.tensor(int(self._invert))
        return d


class InversionTask(DiscriminativeTask):
    """Binary cross-entropy-as-CE on the head's two logits; counts its generator steps as task state."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        return F.cross_entropy(outputs["head"], batch["inverted"].long().reshape(-1)), {}

    def after_step(self, model: torch.nn.Module) -> None:
        self.steps += 1


def test_a_method_defined_in_a_test_module_runs_all_stages(make_workflow) -> None:
    method = {
        "num_classes": 2,
        "task": {"_target_": f"{__name__}.InversionTask"},
        "proxy_transforms": [
            {"_target_": "RandSpatialCropSamplesd", "keys": "image", "roi_size": "@roi_size", "num_samples": 1,
             "random_size": False},
            {"_target_": f"{__name__}.RandInvertd", "keys": "image"},
        ],
    }
    for stage in ("stage1", "stage2", "stage3"):
        workflow = run(make_workflow(stage, "smoke", **method))
        trainer = workflow.parser.get_parsed_content("train#trainer")
        assert type(trainer.objective.task).__name__ == "InversionTask"
        assert int(trainer.objective.task.steps) == trainer.state.iteration == 2  # after_step ran every step
        assert "task" in trainer.checkpoint_objects()  # stateful tasks are checkpointed
        assert trainer.state.metrics["loss_dis"] > 0
        assert (trainer.state.metrics["loss_res"] > 0) == (stage != "stage1")
        stage_dir = workflow.parser.get_parsed_content("stage_dir")
        assert os.path.isfile(os.path.join(stage_dir, "encoder.pt"))
