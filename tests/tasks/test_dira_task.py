"""DiRA's discriminative tasks: Barlow Twins and SimSiam losses by hand, unconditional restorations, the view-2 pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from common.engines import UnitedObjective
from common.losses import LeastSquaresGANLoss
from common.networks.dira import DiRAModel, PatchGANCritic, ProjectionMLP, dira_head, dira_predictor
from common.networks import GenesisDecoder, GenesisEncoder
from common.tasks.dira import BarlowTwinsTask, DiRAMoCoTask, SimSiamTask, dira_task


def _barlow_by_hand(z1: torch.Tensor, z2: torch.Tensor, lambd: float) -> float:
    """Zbontar et al., ICML 2021, eq. 1, written out with loops over the feature pairs."""
    n, d = z1.shape
    a = (z1 - z1.mean(0)) / (z1.std(0) + 1e-6)
    b = (z2 - z2.mean(0)) / (z2.std(0) + 1e-6)
    total = 0.0
    for i in range(d):
        for j in range(d):
            c = float(sum(a[k, i] * b[k, j] for k in range(n)) / n)
            total += (1 - c) ** 2 if i == j else lambd * c**2
    return total


def test_barlow_twins_loss_against_the_formula_and_its_diagnostics() -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    task = BarlowTwinsTask(lambd=0.3)
    loss, logs = task({"z1": z1, "z2": z2}, {})
    assert loss.item() == pytest.approx(_barlow_by_hand(z1, z2, 0.3), rel=1e-5)
    # identical views: every diagonal correlation is 1 (up to the std's epsilon), the diagnostic says so
    same, logs = task({"z1": z1, "z2": z1.clone()}, {})
    assert logs["on_diagonal"] == pytest.approx(5 / 6, rel=1e-3)  # std is unbiased: sum_k a_k^2 / n = (n - 1) / n
    assert logs["retrieval"] == 1.0
    assert same.item() < loss.item()


def test_simsiam_loss_is_negative_cosine_with_stop_gradient() -> None:
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    z = torch.tensor([[3.0, 0.0], [1.0, 0.0]], requires_grad=True)  # cos(p1, z) = 1 and 0
    loss, logs = SimSiamTask()({"p1": p, "p2": p, "z1": z, "z2": z}, {})
    assert loss.item() == pytest.approx(-0.5)  # 1/2 * (-(1 + 0)/2) * 2 directions
    loss.backward()
    assert z.grad is None  # the projections are stop-gradient targets
    assert p.grad is not None and p.grad.abs().sum() > 0
    aligned, _ = SimSiamTask()({"p1": z.detach(), "p2": z.detach(), "z1": z.detach(), "z2": z.detach()}, {})
    assert aligned.item() == pytest.approx(-1.0)
    assert 0 <= logs["z_std"] <= 1


def _model(discriminative: str, decoder: bool = True) -> DiRAModel:
    torch.manual_seed(0)
    encoder = GenesisEncoder(2, 1, 2, 3, norm="instance")
    head = ProjectionMLP(2, encoder.out_channels[-1], 8, 4, num_layers=2)
    predictor = dira_predictor(discriminative, 4, 3)
    return DiRAModel(encoder, head, GenesisDecoder(2, 1, 2, 3, norm="instance") if decoder else None, predictor)


class CountingNetwork(torch.nn.Module):
    """Records how the task calls the (would-be DDP-wrapped) network."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, image: torch.Tensor, **kwargs) -> dict:
        self.calls.append(kwargs)
        return self.model(image, **kwargs)


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    image = torch.rand(3, 1, 16, 16, generator=g)
    return {"image": image, "target": image.flip(2), "view2": torch.rand(3, 1, 16, 16, generator=g)}


@pytest.mark.parametrize("name", ["barlow_twins", "simsiam"])
def test_symmetric_tasks_run_both_views_through_the_network_and_decode_view_one_only(name: str) -> None:
    task = dira_task(name)
    network, batch = CountingNetwork(_model(name)), _batch()
    outputs = task.run(network, batch)
    assert network.calls == [{}, {"decode": False}]  # view 2 through the network too (DDP), without the decoder
    (restoration,) = outputs.restorations
    assert restoration.condition is None and restoration.target is batch["target"]
    assert restoration.prediction.shape == batch["image"].shape
    loss, logs = task(outputs.model, batch)
    loss.backward()
    model = network.model
    assert all(p.grad is not None for p in model.head.parameters())
    assert "retrieval" in logs and task.state_dict() == {}  # stateless: nothing to hand on


def test_moco_restoration_is_unconditional_and_state_is_kept() -> None:
    task = dira_task("moco", queue_size=12, momentum=0.9, shuffle_groups=1)
    assert isinstance(task, DiRAMoCoTask)
    model, batch = _model("moco"), _batch()
    task.setup(model)
    outputs = task.run(model, batch)
    assert [r.condition for r in outputs.restorations] == [None]
    state = task.state_dict()  # the key network and the queue: handed on to the next stage as task.pt
    assert "queue.features" in state and any(k.startswith("key_network.encoder.") for k in state)
    assert any(k.startswith("key_network.head.") for k in state)


def test_unconditional_critic_scores_dira_restorations_in_the_objective() -> None:
    """The objective's adversarial terms run with DiRA's PatchGAN: a conditioned restoration would be refused."""
    task = dira_task("simsiam")
    objective = UnitedObjective(
        task, 1.0, 10.0, 0.001, adversary=PatchGANCritic(2, 1, channels=4, num_layers=2), adversarial_loss=LeastSquaresGANLoss()
    )
    model, batch = _model("simsiam"), _batch()
    outputs = objective.run(model, batch)
    loss, terms, _ = objective.generator_loss(outputs, batch)
    critic_loss, logs = objective.critic_loss(outputs.restorations)
    assert set(terms) == {"dis", "res", "adv"} and torch.isfinite(loss) and torch.isfinite(critic_loss)
    assert terms["res"].item() == pytest.approx(F.mse_loss(outputs.restorations[0].prediction, batch["target"]).item())


def test_unknown_method_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"\('moco', 'barlow_twins', 'simsiam'\)"):
        dira_task("simclr")
    with pytest.raises(KeyError, match="second view"):
        dira_task("barlow_twins").run(_model("barlow_twins"), {"image": torch.rand(2, 1, 16, 16)})
    with pytest.raises(KeyError, match="predictor"):
        dira_task("simsiam").run(_model("moco"), _batch())
    assert dira_head("simsiam", in_channels=4, hidden_features=4, out_features=2).out_features == 2
