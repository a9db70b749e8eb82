"""Two gloo processes: a two-view method through DistributedDataParallel gets the all-reduced gradients, and its
EMA copies agree across ranks (their parameters: BatchNorm running statistics are rank-local under DDP, for the
copies as for the online network between two forward passes).

Each rank runs the online network on both of its views through the DDP wrapper (two forward calls before one
backward), exactly as ``UnitedTrainer`` does through the task's ``run``. The reference is computed in the test
process without DDP: the mean over ranks of each rank's gradient of its own loss (BatchNorm statistics are local to a
rank under DDP, and so they are per rank in the reference).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from plugin_methods import TwoViewEMATask

from common.engines import UnitedObjective
from common.networks import ClassificationHead, GenesisDecoder, GenesisEncoder, UnitedModel

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs gloo")

WORLD = 2


def _model() -> UnitedModel:
    torch.manual_seed(0)  # the same initial weights on every rank and in the reference
    return UnitedModel(
        GenesisEncoder(3, 1, 2, 3), ClassificationHead(3, 16, 8, conv_channels=None, hidden_features=16), GenesisDecoder(3, 1, 2, 3)
    )


def _batch(rank: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)  # different data per rank
    image = torch.rand(2, 1, 16, 16, 16, generator=g)
    return {"image": image, "view2": image.flip(2) + 0.1 * torch.rand(image.shape, generator=g), "target": image.flip(3)}


def _objective() -> UnitedObjective:
    return UnitedObjective(TwoViewEMATask(momentum=0.5), w_dis=1.0, w_res=10.0)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        model = _model()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        objective = _objective()
        objective.task.setup(model)
        outputs = objective.run(ddp, _batch(rank))
        loss, _, _ = objective.generator_loss(outputs, _batch(rank))
        loss.backward()
        grads = _grads(model)
        torch.optim.SGD(model.parameters(), lr=0.1).step()
        objective.task.after_step(model)
        ema = {n: p.detach().clone() for n, p in objective.task.target.named_parameters()}
        torch.save({"grads": grads, "ema": ema}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _reference() -> dict[str, torch.Tensor]:
    per_rank = []
    for rank in range(WORLD):
        model = _model()
        objective = _objective()
        objective.task.setup(model)
        outputs = objective.run(model, _batch(rank))
        objective.generator_loss(outputs, _batch(rank))[0].backward()
        per_rank.append(_grads(model))
    return {k: sum(g[k] for g in per_rank) / WORLD for k in per_rank[0]}


def test_two_view_gradients_are_the_all_reduced_reference_and_ema_copies_agree(tmp_path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    reference = _reference()
    for rank, result in enumerate(ranks):
        assert result["grads"].keys() == reference.keys()
        for name, grad in result["grads"].items():
            torch.testing.assert_close(grad, reference[name], rtol=1e-4, atol=1e-6, msg=f"rank {rank}: {name}")
    # the two views really differ in their contribution: one view alone gives other gradients
    single = _model()
    out = single(_batch(0)["image"])
    out["head"].sum().backward()
    assert not torch.allclose(single.encoder.levels[0][0].conv.weight.grad, reference["encoder.levels.0.0.conv.weight"])
    ema0, ema1 = ranks[0]["ema"], ranks[1]["ema"]
    assert ema0.keys() == ema1.keys() and all(torch.equal(ema0[k], ema1[k]) for k in ema0)
