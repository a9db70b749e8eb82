"""The Swin UNETR task: both views in one network call, rotation CE + NT-Xent (hand-computed), one restoration per
view, and under DistributedDataParallel on two gloo ranks the gradients of one process on the concatenated batch."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from monai.losses import ContrastiveLoss
from torch import nn

from common.engines import UnitedObjective
from common.networks import SwinPretextHead, SwinUNETRDecoder, SwinUnitedModel, swin_vit
from common.tasks import SwinPretextTask

WORLD = 2
TINY = {"feature_size": 12, "depths": (1, 1, 1, 1), "num_heads": (1, 2, 4, 8), "window_size": 4}


class _Recorder(nn.Module):
    """A stand-in network: records its inputs, returns fixed head outputs and ``2 * x`` as the reconstruction."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> dict:
        self.inputs.append(x)
        n = x.shape[0]
        return {"head": {"rotation": torch.zeros(n, 4), "projection": torch.arange(n * 2.0).reshape(n, 2)}, "reconstruction": 2 * x}


def _views_batch(n: int = 2, shape=(1, 4, 4, 4)) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.rand(n, *shape, generator=g), "target": torch.rand(n, *shape, generator=g),
        "view2": torch.rand(n, *shape, generator=g), "target2": torch.rand(n, *shape, generator=g),
        "label": torch.tensor([0, 3, 2])[:n], "label2": torch.tensor([1, 1, 0])[:n],
    }  # fmt: skip


def test_both_views_go_through_the_network_in_one_call_and_each_restores_its_own_target() -> None:
    network, batch = _Recorder(), _views_batch()
    outputs = SwinPretextTask().run(network, batch)
    assert len(network.inputs) == 1 and torch.equal(network.inputs[0], torch.cat([batch["image"], batch["view2"]]))
    assert torch.equal(outputs.model["projection1"], torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    assert torch.equal(outputs.model["projection2"], torch.tensor([[4.0, 5.0], [6.0, 7.0]]))
    first, second = outputs.restorations
    assert torch.equal(first.prediction, 2 * batch["image"]) and first.target is batch["target"] and first.condition is batch["image"]
    assert torch.equal(second.prediction, 2 * batch["view2"]) and second.target is batch["target2"]
    assert second.condition is batch["view2"]


def test_loss_is_rotation_cross_entropy_plus_nt_xent_by_hand() -> None:
    """Uniform logits: CE = ln 4. Two orthogonal pairs, each view equal to its partner: every anchor has its
    positive at similarity 1 and two negatives at 0, so NT-Xent = -log(e^2 / (e^2 + 2)) = log(1 + 2 e^-2) at T = 0.5."""
    batch = _views_batch()
    logits = torch.zeros(4, 4)
    logits[0, 0] = logits[3, 1] = 5.0  # view 1 of crop 0 right (label 0), view 2 of crop 1 right (label 1)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    outputs = {"rotation": logits, "projection1": z, "projection2": z.clone()}
    ce = (2 * math.log(4) + 2 * (math.log(math.exp(5) + 3) - 5)) / 4
    nt_xent = math.log(1 + 2 * math.exp(-2))
    loss, logs = SwinPretextTask()(outputs, batch)
    assert loss.item() == pytest.approx(ce + nt_xent, rel=1e-6)
    assert logs["accuracy"] == 0.5 and logs["retrieval"] == 1.0
    assert logs["rotation_loss"] == pytest.approx(ce) and logs["contrastive_loss"] == pytest.approx(nt_xent, rel=1e-6)
    weighted, _ = SwinPretextTask(rotation_weight=2.0, contrastive_weight=0.5)(outputs, batch)
    assert weighted.item() == pytest.approx(2 * ce + 0.5 * nt_xent, rel=1e-6)
    # the same NT-Xent as MONAI's ContrastiveLoss on random projections
    z1, z2 = torch.randn(3, 8), torch.randn(3, 8)
    _, logs = SwinPretextTask(rotation_weight=0.0)({"rotation": torch.zeros(6, 4), "projection1": z1, "projection2": z2}, _views_batch(3))
    assert logs["contrastive_loss"] == pytest.approx(ContrastiveLoss(temperature=0.5)(z1, z2).item(), rel=1e-5)


def test_the_task_learns_the_rotations_of_one_crop() -> None:
    """Overfitting one (2D, for speed) crop: every quarter-turn in view 1, the next one in view 2 (labels follow the
    concatenation order of ``run``); within 25 AdamW steps the rotation head tells all eight views apart."""
    torch.manual_seed(0)
    model = SwinUnitedModel(swin_vit(**TINY, spatial_dims=2), SwinPretextHead(16 * 12, 4, 16, pooling="mean"))
    crop = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(1))
    turns = torch.arange(4)
    batch = {
        "image": torch.stack([torch.rot90(crop, int(k), dims=(1, 2)) for k in turns]), "label": turns,
        "view2": torch.stack([torch.rot90(crop, int(k + 1) % 4, dims=(1, 2)) for k in turns]), "label2": (turns + 1) % 4,
    }  # fmt: skip
    task = SwinPretextTask()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(25):
        loss, logs = task(task.run(model, batch).model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert logs["accuracy"] == 1.0 and logs["rotation_loss"] < 0.5 * math.log(4)


def test_missing_view_keys_name_the_transform() -> None:
    batch = _views_batch()
    del batch["view2"]
    with pytest.raises(KeyError, match="RandSwinViewsd"):
        SwinPretextTask().run(_Recorder(), batch)
    with pytest.raises(ValueError, match="not both 0"):
        SwinPretextTask(rotation_weight=0.0, contrastive_weight=0.0)


# ---------------------------------------------------------------------------------------------- two gloo ranks
def _model() -> SwinUnitedModel:
    """A 2D SwinUNETR (the task is the same in 2D and 3D; 2D keeps the three reference passes to seconds)."""
    torch.manual_seed(0)  # the same initial weights on every rank and in the reference
    encoder = swin_vit(**TINY, spatial_dims=2)
    return SwinUnitedModel(encoder, SwinPretextHead(16 * 12, 4, 8), SwinUNETRDecoder(1, 1, 12, spatial_dims=2))


def _batch(rank: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)  # different data per rank
    shape = (2, 1, 64, 32)
    return {
        "image": torch.rand(shape, generator=g), "view2": torch.rand(shape, generator=g),
        "target": torch.rand(shape, generator=g), "target2": torch.rand(shape, generator=g),
        "label": torch.randint(0, 4, (2,), generator=g), "label2": torch.randint(0, 4, (2,), generator=g),
    }  # fmt: skip


def _objective(gather: bool = True) -> UnitedObjective:
    return UnitedObjective(SwinPretextTask(gather=gather), w_dis=1.0, w_res=1.0, restoration_loss=nn.L1Loss())


def _grads(model: nn.Module, objective: UnitedObjective, network: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
    outputs = objective.run(network, batch)
    objective.generator_loss(outputs, batch)[0].backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        model = _model()
        ddp = nn.parallel.DistributedDataParallel(model)  # find_unused_parameters=False: every parameter is used
        grads = _grads(model, _objective(), ddp, _batch(rank))
        torch.save(grads, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_ranks_get_the_gradients_of_one_process_on_the_concatenated_batch(tmp_path) -> None:
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("needs torch.distributed with gloo")
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    # one process, both ranks' crops in rank order: every view is a negative of every other crop's views
    batches = [_batch(r) for r in range(WORLD)]
    merged = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    model = _model()
    reference = _grads(model, _objective(), model, merged)
    assert any(n.startswith("decoder.") for n in reference) and any(n.startswith("head.projection") for n in reference)
    for rank, grads in enumerate(ranks):
        assert grads.keys() == reference.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(grad, reference[name], rtol=1e-3, atol=1e-6, msg=f"rank {rank}: {name}")
    # the cross-rank negatives matter: rank-local NT-Xent, averaged over ranks, is another gradient
    local = [_grads(m, _objective(gather=False), m, b) for m, b in ((_model(), batches[0]), (_model(), batches[1]))]
    name = "head.projection.weight"
    assert not torch.allclose((local[0][name] + local[1][name]) / 2, reference[name], rtol=1e-3, atol=1e-6)
