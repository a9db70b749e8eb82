"""common.refs.objective on a real (tiny) Genesis U-Net: what the trainer's one backward pass yields is the ReFs
update computed independently, and without gradients the method's own loss is left untouched."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss

from common.engines import UnitedObjective
from common.networks import ClassificationHead, GenesisDecoder, GenesisEncoder, UnitedModel
from common.refs import ReferenceBatches, ReferenceModel, RefsObjective, pcgrad_correction
from common.tasks import PretextClassificationTask


def _model() -> ReferenceModel:
    torch.manual_seed(0)
    united = UnitedModel(
        GenesisEncoder(3, 1, 2, 3), ClassificationHead(3, 16, 4, conv_channels=None, hidden_features=8), GenesisDecoder(3, 1, 2, 3)
    )
    return ReferenceModel(united, num_classes=3, probe_size=(16, 16, 16))


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 1, 16, 16, 16, generator=g)
    return {"image": image, "target": image.flip(2), "label": torch.tensor([0, 3])}


def _reference() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    label = torch.randint(0, 3, (2, 1, 16, 16, 16), generator=g).float()
    return [{"image": torch.rand(2, 1, 16, 16, 16, generator=g), "label": label}]


def _objective(**kwargs) -> RefsObjective:
    method = UnitedObjective(PretextClassificationTask(), w_dis=1.0, w_res=10.0)
    return RefsObjective(method, _reference(), **kwargs)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _per_task_grads(w_ref: float) -> tuple[dict, dict]:
    """Gradients of L_ssl and of w_ref * L_ref, each by its own backward pass (BatchNorm in training mode)."""
    results = []
    for which in ("ssl", "ref"):
        model = _model()
        method = UnitedObjective(PretextClassificationTask(), w_dis=1.0, w_res=10.0)
        if which == "ssl":
            loss = method.generator_loss(method.run(model, _batch()), _batch())[0]
        else:
            ref = _reference()[0]
            loss = w_ref * DiceCELoss(to_onehot_y=True, softmax=True)(model(ref["image"], reference=True), ref["label"])
        loss.backward()
        results.append(_grads(model))
    return results[0], results[1]


def test_one_backward_gives_the_pcgrad_update_on_the_encoder_and_plain_gradients_elsewhere() -> None:
    w_ref = 2.0
    g_ssl, g_ref = _per_task_grads(w_ref)
    model = _model()
    objective = _objective(w_ref=w_ref, penalty_weight=0.0, projection=True)
    outputs = objective.run(model, _batch())
    loss, terms, logs = objective.generator_loss(outputs, _batch())
    loss.backward()
    got = _grads(model)

    encoder = [n for n, _ in model.named_parameters() if n.startswith("model.encoder.")]
    flat_s = torch.cat([g_ssl.get(n, torch.zeros_like(got[n])).reshape(-1) for n in encoder])
    flat_r = torch.cat([g_ref.get(n, torch.zeros_like(got[n])).reshape(-1) for n in encoder])
    cosine = torch.nn.functional.cosine_similarity(flat_s, flat_r, dim=0).item()
    assert logs["refs_cosine"] == pytest.approx(cosine, abs=1e-5)
    assert cosine < 0 and logs["refs_conflict"] == 1.0  # these seeds conflict, so the projection is exercised
    expected_encoder = flat_s + flat_r + pcgrad_correction(flat_s, flat_r)
    assert not torch.allclose(expected_encoder, flat_s + flat_r, atol=1e-5, rtol=1e-4)  # the test can tell them apart
    torch.testing.assert_close(torch.cat([got[n].reshape(-1) for n in encoder]), expected_encoder, atol=1e-5, rtol=1e-4)
    for name in got:
        if name not in encoder:  # head, decoder, reference head: the plain sum of both tasks' gradients
            expected = g_ssl.get(name, 0) + g_ref.get(name, 0)
            torch.testing.assert_close(got[name], expected, atol=1e-5, rtol=1e-4, msg=name)
    assert "model.reference_head.conv.conv.weight" not in got and "reference_head.conv.conv.weight" in got
    assert set(terms) == {"dis", "res", "ref"}
    assert loss.item() == pytest.approx(logs["loss_ssl"] + w_ref * logs["loss_ref"], rel=1e-5)  # the PCGrad term is 0


def test_the_penalty_is_added_to_the_loss_and_logged() -> None:
    model = _model()
    objective = _objective(w_ref=1.0, penalty_weight=0.5, projection=False)
    loss, _, logs = objective.generator_loss(objective.run(model, _batch()), _batch())
    assert logs["refs_penalty"] == pytest.approx(0.5 * (1 - logs["refs_cosine"]), abs=1e-6)
    assert loss.item() == pytest.approx(logs["loss_ssl"] + logs["loss_ref"] + logs["refs_penalty"], rel=1e-5)
    assert {"loss_ssl", "loss_ref", "refs_cosine", "refs_penalty", "refs_conflict", "refs_correction_norm"} <= set(logs)


def test_without_gradients_the_methods_loss_is_returned_unchanged() -> None:
    model = _model()
    objective = _objective()
    method = objective.objective
    with torch.no_grad():
        outputs = objective.run(model, _batch())
        loss, terms, logs = objective.generator_loss(outputs, _batch())
        own = method.generator_loss(method.run(model, _batch()), _batch())
    assert loss.item() == pytest.approx(own[0].item()) and set(terms) == {"dis", "res"} and "refs_cosine" not in logs
    assert objective.reference_batches.passes == 0  # no reference batch was drawn


def test_a_network_without_the_reference_head_is_refused_with_the_overlay_order() -> None:
    objective = _objective()
    with pytest.raises(ValueError, match="after multi_gpu_train.yaml"):
        objective.check_model(_model().model)
    with pytest.raises(ValueError, match="ReferenceModel"):
        objective.run(_model().model, _batch())


def test_the_reference_stream_cycles_and_refuses_an_empty_loader() -> None:
    stream = ReferenceBatches([{"i": 0}, {"i": 1}])
    assert [next(stream)["i"] for _ in range(5)] == [0, 1, 0, 1, 0] and stream.passes == 2
    with pytest.raises(ValueError, match="no batch"):
        next(ReferenceBatches([]))
    with pytest.raises(ValueError, match="non-negative"):
        _objective(w_ref=-1.0)
