"""Two gloo processes against one process on the concatenated batch: NT-Xent with gathered negatives, MoCo and BYOL
through DistributedDataParallel (loss, gradients, queue, EMA copies), PCRL's NCE normaliser, queue and teacher.

The networks use instance normalisation, so every sample's embedding is independent of the rest of its batch: then
a two-rank step must give exactly what one process gives on the concatenated batch (with BatchNorm the statistics
are rank-local by design and no such equality exists). Each rank draws its own batch; the reference concatenates
them in rank order, which is the order ``all_gather`` puts keys into the queue.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from common.engines import UnitedObjective
from common.losses import NCELoss, NTXentLoss
from common.networks import MLP, BYOLModel, GenesisDecoder, GenesisEncoder, PCRLModel, ProjectionHead, UnitedModel
from common.tasks import BYOLTask, MoCoTask, PCRLTask
from common.transforms import identity_code

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs gloo")

WORLD = 2
B = 2  # samples per rank


def _encoder() -> GenesisEncoder:
    return GenesisEncoder(3, 1, 2, 3, norm="instance")


def _decoder() -> GenesisDecoder:
    return GenesisDecoder(3, 1, 2, 3, norm="instance")


def _moco() -> tuple[UnitedModel, UnitedObjective]:
    torch.manual_seed(0)  # the same initial weights (and initial queue) on every rank and in the reference
    model = UnitedModel(_encoder(), ProjectionHead(3, 16, 16, 8), _decoder())
    objective = UnitedObjective(MoCoTask(queue_size=12, momentum=0.9, shuffle_groups=2), w_dis=1.0, w_res=10.0)
    objective.task.setup(model)
    return model, objective


def _byol() -> tuple[BYOLModel, UnitedObjective]:
    torch.manual_seed(0)
    model = BYOLModel(_encoder(), ProjectionHead(3, 16, 16, 8), MLP(8, 16, 8), _decoder())
    objective = UnitedObjective(BYOLTask(max_steps=10, base_momentum=0.9), w_dis=1.0, w_res=10.0)
    objective.task.setup(model)
    return model, objective


def _pcrl() -> tuple[PCRLModel, UnitedObjective]:
    torch.manual_seed(0)
    model = PCRLModel(_encoder(), ProjectionHead(3, 16, 16, 8), _decoder(), embedding_hidden=8)
    objective = UnitedObjective(PCRLTask(queue_size=12, momentum=0.9), w_dis=1.0, w_res=10.0)
    objective.task.setup(model)
    return model, objective


def _batch(rank: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)  # different data per rank
    image, view2 = torch.rand(B, 1, 16, 16, 16, generator=g), torch.rand(B, 1, 16, 16, 16, generator=g)
    codes = identity_code(B)
    return {"image": image, "view2": view2, "target": image.flip(2), "target2": view2.flip(3), "aug": codes, "aug2": codes}


def _embeddings(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(200 + rank)
    return torch.randn(B, 8, generator=g), torch.randn(B, 8, generator=g)


def _concat(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _step(network, model, objective, batch) -> dict:
    """One trainer step (forward through ``network``, backward, SGD, the task's update), as UnitedTrainer does."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    outputs = objective.run(network, batch)
    loss, terms, _ = objective.generator_loss(outputs, batch)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    optimizer.step()
    objective.task.after_step(model)
    return {"loss": loss.detach(), "dis": terms["dis"].detach(), "grads": grads, "task": {k: v.clone() for k, v in objective.task.state_dict().items()}}


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        result: dict = {}
        z1, z2 = (z.requires_grad_(True) for z in _embeddings(rank))
        loss = NTXentLoss(0.5)(z1, z2)
        loss.backward()
        result["ntxent"] = {"loss": loss.detach(), "g1": z1.grad.clone(), "g2": z2.grad.clone()}
        for name, build in (("moco", _moco), ("byol", _byol)):
            model, objective = build()
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            result[name] = _step(ddp, model, objective, _batch(rank))
        model, objective = _pcrl()
        q, k = _embeddings(rank)
        result["pcrl_log_z"] = objective.task.loss.log_normaliser(q, k, objective.task.queue.features)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        result["pcrl"] = _step(ddp, model, objective, _batch(rank))
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=True)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _mean_loss(ranks: list[dict], name: str, key: str = "loss") -> torch.Tensor:
    return sum(r[name][key] for r in ranks) / WORLD


def test_nt_xent_with_gathered_negatives_equals_one_process(ranks) -> None:
    z1, z2 = (torch.cat(parts).requires_grad_(True) for parts in zip(*[_embeddings(r) for r in range(WORLD)]))
    reference = NTXentLoss(0.5)(z1, z2)
    reference.backward()
    torch.testing.assert_close(_mean_loss(ranks, "ntxent"), reference.detach())
    for r, result in enumerate(ranks):  # DDP divides the summed gradient by the world size
        rows = slice(r * B, (r + 1) * B)
        torch.testing.assert_close(result["ntxent"]["g1"] / WORLD, z1.grad[rows])
        torch.testing.assert_close(result["ntxent"]["g2"] / WORLD, z2.grad[rows])
    # without gathering, a rank's loss would see fewer negatives and differ
    local = sum(NTXentLoss(0.5, gather_distributed=False)(*_embeddings(r)) for r in range(WORLD)) / WORLD
    assert not torch.allclose(local, reference.detach())


@pytest.mark.parametrize("name,build", [("moco", _moco), ("byol", _byol)])
def test_two_ranks_equal_one_process_on_the_concatenated_batch(ranks, name: str, build) -> None:
    model, objective = build()
    reference = _step(model, model, objective, _concat([_batch(r) for r in range(WORLD)]))
    torch.testing.assert_close(_mean_loss(ranks, name, "dis"), reference["dis"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(_mean_loss(ranks, name), reference["loss"], rtol=1e-5, atol=1e-6)
    for r, result in enumerate(ranks):
        assert result[name]["grads"].keys() == reference["grads"].keys()
        for param, grad in result[name]["grads"].items():
            torch.testing.assert_close(grad, reference["grads"][param], rtol=1e-4, atol=1e-6, msg=f"rank {r}: {param}")
        # the task state (key network or target network, queue) is the same on every rank and in the reference
        for key, value in reference["task"].items():
            torch.testing.assert_close(result[name]["task"][key], value, rtol=1e-5, atol=1e-6, msg=f"rank {r}: {key}")
    if name == "moco":  # the queue's newest entries are every rank's keys, in rank order
        assert int(ranks[0]["moco"]["task"]["queue.pointer"]) == WORLD * B


def test_pcrl_normaliser_queue_and_teacher_agree_across_ranks(ranks) -> None:
    q, k = (torch.cat(parts) for parts in zip(*[_embeddings(r) for r in range(WORLD)]))
    _, objective = _pcrl()
    reference = NCELoss(0.2).log_normaliser(q, k, objective.task.queue.features)
    for result in ranks:  # every rank holds the normaliser of all ranks' scores, that of one process
        torch.testing.assert_close(result["pcrl_log_z"], reference)
    r0, r1 = (r["pcrl"]["task"] for r in ranks)
    assert r0.keys() == r1.keys()
    for key in r0:  # queue, normaliser and teacher parameters equal; BatchNorm-free networks: buffers too
        torch.testing.assert_close(r0[key], r1[key], rtol=0, atol=0, msg=key)
    assert int(r0["queue.pointer"]) == WORLD * B and not torch.isnan(r0["log_z"])
    for r, result in enumerate(ranks):  # gradients are all-reduced: equal on both ranks
        for param, grad in result["pcrl"]["grads"].items():
            torch.testing.assert_close(grad, ranks[0]["pcrl"]["grads"][param], msg=f"rank {r}: {param}")
