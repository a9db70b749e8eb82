"""common.refs.gradients on toy problems whose gradients are known in closed form.

Linear losses ``L = <w, a>`` have the gradient ``a`` and no curvature, so after ``(L_s + L_r + match.loss).backward()``
``w.grad`` must be exactly the PCGrad sum computed by hand. Quadratic losses ``0.5 ||w - u||^2`` have the gradient
``w - u``, so the cosine penalty's own gradient can be compared with autograd on the closed-form expression.
"""

from __future__ import annotations

import pytest
import torch

from common.refs import match_gradients, pcgrad_correction


def _linear(a: list[float], b: list[float], w0: list[float] | None = None):
    w = torch.nn.Parameter(torch.tensor(w0 or [0.3, -0.2]))
    return w, torch.dot(w, torch.tensor(a)), torch.dot(w, torch.tensor(b))


def test_identical_tasks_give_cosine_one_and_zero_penalty() -> None:
    w = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))
    u = torch.tensor([1.0, 2.0, -1.0])
    ssl = 0.5 * (w - u).pow(2).sum()
    ref = 0.5 * (w - u).pow(2).sum()
    match = match_gradients(ssl, ref, [w], penalty_weight=0.7, projection=True)
    assert match.cosine == pytest.approx(1.0, abs=1e-6)
    assert match.penalty == pytest.approx(0.0, abs=1e-6)
    assert match.conflict == 0.0 and match.correction_norm == 0.0
    (ssl + ref + match.loss).backward()
    # no conflict, no correction, and the penalty is at its minimum: the gradient is the plain sum 2 (w - u)
    torch.testing.assert_close(w.grad, 2 * (w.detach() - u), atol=1e-5, rtol=1e-5)


def test_a_scaled_copy_of_the_same_task_still_has_cosine_one() -> None:
    w, ssl, _ = _linear([1.0, 2.0], [0.0, 0.0])
    match = match_gradients(ssl, 5.0 * ssl, [w], penalty_weight=1.0)
    assert match.cosine == pytest.approx(1.0, abs=1e-6) and match.penalty == pytest.approx(0.0, abs=1e-6)


def test_exactly_opposite_gradients_are_projected_to_zero() -> None:
    # g_s = (2, 0), g_r = (-1, 0): each projected on the other's normal plane is 0, so the update is 0, not (1, 0)
    w, ssl, ref = _linear([2.0, 0.0], [-1.0, 0.0])
    match = match_gradients(ssl, ref, [w], penalty_weight=0.0, projection=True)
    assert match.cosine == pytest.approx(-1.0, abs=1e-6) and match.conflict == 1.0
    assert match.loss.item() == pytest.approx(0.0, abs=1e-7)  # the projection term changes gradients, never the value
    (ssl + ref + match.loss).backward()
    torch.testing.assert_close(w.grad, torch.zeros(2), atol=1e-6, rtol=0)


def test_partly_conflicting_gradients_follow_pcgrad() -> None:
    # g_s = (1, 0), g_r = (-1, 1), <g_s, g_r> = -1:
    # g_s' = g_s - (-1 / 2) g_r = (0.5, 0.5); g_r' = g_r - (-1 / 1) g_s = (0, 1); update (0.5, 1.5) instead of (0, 1)
    w, ssl, ref = _linear([1.0, 0.0], [-1.0, 1.0])
    match = match_gradients(ssl, ref, [w], penalty_weight=0.0, projection=True)
    assert match.cosine == pytest.approx(-1 / 2**0.5, abs=1e-6)
    assert match.correction_norm == pytest.approx(float(torch.tensor([0.5, 0.5]).norm()), abs=1e-6)
    (ssl + ref + match.loss).backward()
    torch.testing.assert_close(w.grad, torch.tensor([0.5, 1.5]))
    # projected gradients no longer conflict with either task
    assert torch.dot(w.grad, torch.tensor([1.0, 0.0])) > 0 and torch.dot(w.grad, torch.tensor([-1.0, 1.0])) > 0


def test_without_projection_conflicting_gradients_are_only_summed() -> None:
    w, ssl, ref = _linear([1.0, 0.0], [-1.0, 1.0])
    match = match_gradients(ssl, ref, [w], penalty_weight=0.0, projection=False)
    assert match.conflict == 1.0 and match.correction_norm == 0.0
    (ssl + ref + match.loss).backward()
    torch.testing.assert_close(w.grad, torch.tensor([0.0, 1.0]))


def test_agreeing_gradients_are_not_projected() -> None:
    assert torch.equal(pcgrad_correction(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0])), torch.zeros(2))


def test_the_penalty_and_its_gradient_match_the_closed_form() -> None:
    u, v = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([-1.0, 3.0, 0.5])
    w0 = torch.tensor([0.2, -0.4, 0.9])
    lam = 0.5
    w = torch.nn.Parameter(w0.clone())
    ssl = 0.5 * (w - u).pow(2).sum()
    ref = 0.5 * (w - v).pow(2).sum()
    match = match_gradients(ssl, ref, [w], penalty_weight=lam)
    (ssl + ref + match.loss).backward()

    x = w0.clone().requires_grad_(True)  # closed form: g_s = x - u, g_r = x - v
    cos = torch.nn.functional.cosine_similarity(x - u, x - v, dim=0)
    penalty = lam * (1 - cos)
    (0.5 * (x - u).pow(2).sum() + 0.5 * (x - v).pow(2).sum() + penalty).backward()
    assert match.cosine == pytest.approx(cos.item(), abs=1e-6)
    assert match.penalty == pytest.approx(penalty.item(), abs=1e-6)
    torch.testing.assert_close(w.grad, x.grad, atol=1e-5, rtol=1e-5)
    # the penalty's gradient is not zero here: it really turns the parameters
    assert not torch.allclose(w.grad, 2 * w0 - u - v, atol=1e-3)


def test_gradients_are_taken_over_several_parameters_and_unreached_ones_count_zero() -> None:
    a = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    b = torch.nn.Parameter(torch.tensor([[3.0]]))
    ssl = a.sum()  # gradient (1, 1 | 0)
    ref = (a * torch.tensor([1.0, -1.0])).sum() + 2 * b.sum()  # gradient (1, -1 | 2)
    match = match_gradients(ssl, ref, [a, b], penalty_weight=0.0)
    assert match.cosine == pytest.approx(0.0, abs=1e-7) and match.conflict == 0.0


def test_bad_arguments_are_refused() -> None:
    w, ssl, ref = _linear([1.0, 0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        match_gradients(ssl, ref, [w], penalty_weight=-1.0)
    w.requires_grad_(False)
    with pytest.raises(ValueError, match="frozen"):
        match_gradients(ssl, ref, [w])
