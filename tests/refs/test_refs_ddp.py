"""ReFs on two gloo ranks: the gradients after DistributedDataParallel's all-reduce are those of the global objective.

Each rank runs :class:`~common.refs.RefsObjective` on its own SSL batch and its own reference batch through a
DDP-wrapped :class:`~common.refs.ReferenceModel` (three forward calls of DDP, one backward, with the double backward of
the cosine penalty and the PCGrad term). The reference is computed in the test process without DDP, from the closed
form of what :mod:`common.refs.gradients` promises for the *global* batch::

    L = mean_k (L_ssl,k + w_ref L_ref,k) + lambda (1 - cos(mean_k g_ssl,k, mean_k g_ref,k))  (+ PCGrad delta on the encoder)

BatchNorm statistics are per rank under DDP, so every per-rank loss is computed by its own forward pass here too.
A torchrun run of ``train.yaml + stage2.yaml + smoke.yaml + multi_gpu_train.yaml + refs.yaml`` checks the overlay
order and the per-rank reference loader in the real workflow.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from monai.losses import DiceCELoss
from torchrun_process import run_torchrun

from common.data import write_phantom_dataset
from common.engines import UnitedObjective
from common.networks import ClassificationHead, GenesisDecoder, GenesisEncoder, UnitedModel
from common.refs import ReferenceModel, RefsObjective, pcgrad_correction
from common.tasks import PretextClassificationTask

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs gloo")

WORLD = 2
W_REF, LAMBDA = 1.5, 0.3
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _model() -> ReferenceModel:
    torch.manual_seed(0)  # the same initial weights on every rank and in the reference
    united = UnitedModel(
        GenesisEncoder(3, 1, 2, 3), ClassificationHead(3, 16, 4, conv_channels=None, hidden_features=8), GenesisDecoder(3, 1, 2, 3)
    )
    return ReferenceModel(united, num_classes=3, probe_size=(16, 16, 16))


def _batch(rank: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)  # different data per rank
    image = torch.rand(2, 1, 16, 16, 16, generator=g)
    return {"image": image, "target": image.flip(3), "label": torch.tensor([rank, 3 - rank])}


def _reference_batch(rank: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(200 + rank)
    return {"image": torch.rand(2, 1, 16, 16, 16, generator=g), "label": torch.randint(0, 3, (2, 1, 16, 16, 16), generator=g).float()}


def _method() -> UnitedObjective:
    return UnitedObjective(PretextClassificationTask(), w_dis=1.0, w_res=10.0)


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        model = _model()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        objective = RefsObjective(_method(), [_reference_batch(rank)], w_ref=W_REF, penalty_weight=LAMBDA, projection=True)
        outputs = objective.run(ddp, _batch(rank))
        loss, _, logs = objective.generator_loss(outputs, _batch(rank))
        loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        torch.save({"grads": grads, "logs": logs}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _flat_grads(loss: torch.Tensor, shared: list[torch.Tensor]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, shared, retain_graph=True, create_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(shared, grads)])


def _expected(matched: str = "global") -> tuple[dict[str, torch.Tensor], float]:
    """Gradients (averaged over ranks) and cosine of the ReFs objective without DDP.

    ``matched="global"``: the cosine and PCGrad of the ranks' mean gradients (what the module promises);
    ``"local"``: each rank matching its own gradients (what a rank-local implementation would give).
    """
    model = _model()
    params = dict(model.named_parameters())
    encoder = [n for n in params if n.startswith("model.encoder.")]
    shared = [params[n] for n in encoder]
    dice_ce = DiceCELoss(to_onehot_y=True, softmax=True)
    losses, g_ssl, g_ref = [], [], []
    for rank in range(WORLD):
        method = _method()
        ssl = method.generator_loss(method.run(model, _batch(rank)), _batch(rank))[0]
        reference = _reference_batch(rank)
        ref = W_REF * dice_ce(model(reference["image"], reference=True), reference["label"])
        losses.append(ssl + ref)
        g_ssl.append(_flat_grads(ssl, shared)), g_ref.append(_flat_grads(ref, shared))
    pairs = [(sum(g_ssl) / WORLD, sum(g_ref) / WORLD)] if matched == "global" else list(zip(g_ssl, g_ref))
    cosines = [torch.nn.functional.cosine_similarity(s, r, dim=0) for s, r in pairs]
    total = sum(losses) / WORLD + sum(LAMBDA * (1 - c) for c in cosines) / len(pairs)
    grads = dict(zip(params, torch.autograd.grad(total, list(params.values()), allow_unused=True)))
    delta = sum(pcgrad_correction(s, r) for s, r in pairs) / len(pairs)
    offset = 0
    for name in encoder:
        n = params[name].numel()
        grads[name] = grads[name] + delta[offset : offset + n].view_as(params[name])
        offset += n
    return {k: v for k, v in grads.items() if v is not None}, float(cosines[0].detach())


def test_refs_gradients_under_ddp_are_those_of_the_global_objective(tmp_path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    expected, cosine = _expected("global")
    for rank, result in enumerate(ranks):
        assert result["logs"]["refs_cosine"] == pytest.approx(cosine, abs=1e-5), f"rank {rank}"
        assert result["grads"].keys() == expected.keys()
        for name, grad in result["grads"].items():
            torch.testing.assert_close(grad, expected[name], rtol=1e-4, atol=1e-6, msg=f"rank {rank}: {name}")
    # matching each rank's own gradients would give other encoder gradients: the test tells the two apart
    local, _ = _expected("local")
    name = "model.encoder.levels.0.0.conv.weight"
    assert not torch.allclose(local[name], expected[name], rtol=1e-4, atol=1e-6)


def test_torchrun_runs_the_overlay_after_multi_gpu_train(tmp_path) -> None:
    datalist = write_phantom_dataset(str(tmp_path / "data"), num_volumes=3, shape=(48, 48, 40))
    bundle = os.path.join(REPO_ROOT, "bundles", "rotation")
    configs = os.path.join(bundle, "configs")
    files = [os.path.join(configs, f"{n}.yaml") for n in ("train", "stage2", "smoke", "multi_gpu_train", "refs")]
    output_dir = str(tmp_path / "out")
    args = [
        "--standalone", "--nnodes=1", f"--nproc_per_node={WORLD}",
        "-m", "monai.bundle", "run", "--config_file", repr(files),
        "--meta_file", os.path.join(configs, "metadata.json"), "--logging_file", os.path.join(configs, "logging.conf"),
        "--bundle_root", bundle, "--dataset_dir", os.path.dirname(datalist), "--datalist", datalist,
        "--output_dir", output_dir, "--handoff_components", "[]", "--refs_projection", "True",
    ]  # fmt: skip
    status, output = run_torchrun(args, cwd=REPO_ROOT, timeout=180)
    if status is None:
        pytest.fail("torchrun with refs.yaml timed out:\n" + output[-4000:])
    assert status == 0, output[-4000:]
    stage_dir = os.path.join(output_dir, "stage2")
    train = [json.loads(line) for line in open(os.path.join(stage_dir, "metrics.jsonl")) if '"train"' in line][-1]
    assert -1.0 <= train["refs_cosine"] <= 1.0 and train["loss_ref"] > 0
    assert {"encoder.pt", "decoder.pt", "reference_head.pt", "model.pt"} <= set(os.listdir(stage_dir))
