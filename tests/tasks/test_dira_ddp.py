"""Barlow Twins and SimSiam on two gloo ranks through DistributedDataParallel equal one process on the whole batch.

Barlow Twins' cross-correlation needs the whole batch: each rank gathers every rank's projections (a differentiable
all-gather), so the loss and the all-reduced gradients must be those of one process on the concatenated batch.
SimSiam is per-sample. The networks use instance normalisation and projectors without BatchNorm, so a sample's
embedding does not depend on its batch (see ``test_contrastive_ddp.py``).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from common.engines import UnitedObjective
from common.networks import MLP, GenesisDecoder, GenesisEncoder
from common.networks.dira import DiRAModel, ProjectionMLP
from common.tasks.dira import dira_task

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs gloo")

WORLD = 2
B = 3  # samples per rank
METHODS = ("barlow_twins", "simsiam")


def _build(name: str) -> tuple[DiRAModel, UnitedObjective]:
    torch.manual_seed(0)
    encoder = GenesisEncoder(2, 1, 2, 3, norm="instance")
    predictor = MLP(4, 3, 4) if name == "simsiam" else None
    model = DiRAModel(encoder, ProjectionMLP(2, encoder.out_channels[-1], 8, 4), GenesisDecoder(2, 1, 2, 3, norm="instance"), predictor)
    return model, UnitedObjective(dira_task(name, lambd=0.1), w_dis=1.0, w_res=10.0)


def _batch(rank: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(10 + rank)
    image = torch.rand(B, 1, 16, 16, generator=g)
    return {"image": image, "target": image.flip(3), "view2": torch.rand(B, 1, 16, 16, generator=g)}


def _step(network, model, objective, batch) -> dict:
    outputs = objective.run(network, batch)
    loss, terms, _ = objective.generator_loss(outputs, batch)
    loss.backward()
    return {"dis": terms["dis"].detach(), "grads": {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}}


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        result = {}
        for name in METHODS:
            model, objective = _build(name)
            result[name] = _step(torch.nn.parallel.DistributedDataParallel(model), model, objective, _batch(rank))
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("dira_ddp")
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=True)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.mark.parametrize("name", METHODS)
def test_two_ranks_equal_one_process_on_the_concatenated_batch(ranks, name: str) -> None:
    model, objective = _build(name)
    batches = [_batch(r) for r in range(WORLD)]
    reference = _step(model, model, objective, {k: torch.cat([b[k] for b in batches]) for k in batches[0]})
    if name == "barlow_twins":  # every rank computes the global loss on the gathered projections
        for result in ranks:
            torch.testing.assert_close(result[name]["dis"], reference["dis"], rtol=1e-5, atol=1e-6)
    else:  # per-sample: the mean of the ranks' losses
        torch.testing.assert_close(sum(r[name]["dis"] for r in ranks) / WORLD, reference["dis"], rtol=1e-5, atol=1e-6)
    # round-off relative to the largest gradient (the conv biases before instance norm have a true gradient of 0)
    atol = 1e-6 * max(float(g.abs().max()) for g in reference["grads"].values())
    for r, result in enumerate(ranks):
        assert result[name]["grads"].keys() == reference["grads"].keys()
        for param, grad in result[name]["grads"].items():
            torch.testing.assert_close(grad, reference["grads"][param], rtol=1e-4, atol=atol, msg=f"rank {r}: {param}")


def test_barlow_twins_without_gathering_would_differ() -> None:
    """The equality above needs the gather: the mean of the per-rank losses is another number."""
    task = dira_task("barlow_twins", lambd=0.1)
    g = torch.Generator().manual_seed(3)
    parts = [(torch.randn(B, 4, generator=g), torch.randn(B, 4, generator=g)) for _ in range(WORLD)]
    local = sum(task({"z1": a, "z2": b}, {})[0] for a, b in parts) / WORLD
    whole = task({"z1": torch.cat([a for a, _ in parts]), "z2": torch.cat([b for _, b in parts])}, {})[0]
    assert not torch.allclose(local, whole)
