"""Gradient matching between a self-supervised loss and a supervised reference loss on shared parameters (ReFs).

ReFs (Xie et al., "ReFs: A hybrid pre-training paradigm for 3D medical image segmentation", MedIA 91:103023, 2024)
trains the feature extractor so that the self-supervised and the reference loss are both low *and* give it similar
gradients, "optimising the model towards a consistent direction". The paper's formula is not public (no code, no
full text in reach), so this module implements two documented readings, usable alone or together:

**Cosine penalty.** With ``g_s = d L_ssl / d theta`` and ``g_r = d (w_ref * L_ref) / d theta`` flattened over the
shared parameters ``theta`` (the encoder),

    ``P = lambda * (1 - cos(g_s, g_r))``,   ``cos(a, b) = <a, b> / (||a|| ||b|| + eps)``

is added to the loss and differentiated (``create_graph=True``: a Hessian-vector product through both losses). It is
0 for aligned gradients and ``2 * lambda`` for opposite ones, is invariant to the losses' scales (``w_ref`` does not
change it), and its gradient turns the parameters towards regions where the two tasks agree, which is the abstract's
"similar gradient when updating the feature extractor from either task". Why the cosine and not a distance such as
``||g_s - g_r||^2``: a distance would also shrink the gradients' norms (i.e. flatten both losses) and mix the tasks'
scales; the cosine asks only for a common direction.

**PCGrad projection** (Yu et al., "Gradient surgery for multi-task learning", NeurIPS 2020). When the gradients
conflict (``<g_s, g_r> < 0``), each is projected onto the normal plane of the other before they are summed:

    ``g_s' = g_s - <g_s, g_r> / ||g_r||^2 * g_r``,   ``g_r' = g_r - <g_r, g_s> / ||g_s||^2 * g_s``

and the shared parameters step along ``g_s' + g_r'`` (without conflict: ``g_s + g_r``). Exactly opposite gradients
cancel to 0. The trainer is not changed for this: the correction ``delta = (g_s' + g_r') - (g_s + g_r)`` (detached)
enters the loss as ``sum_p <delta_p, theta_p> - sum_p <delta_p, theta_p>.detach()``, a term whose value is 0 and
whose gradient is ``delta``, so one ``loss.backward()`` (with AMP scaling, clipping and DistributedDataParallel's
all-reduce) yields the projected gradient.

**Distributed training.** Both rules use the gradients of the *global* batch: each rank's flattened gradient is
replaced by ``g + (mean_over_ranks(g) - g).detach()``, whose value is the all-reduced mean and whose derivative is
that of the rank's own ``g``; after DistributedDataParallel averages the parameter gradients, the penalty's
gradient equals the gradient of ``P`` computed on the concatenated batch, and the same PCGrad correction is added on
every rank. No collective runs inside the backward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from common.engines.distributed import is_distributed

__all__ = ["GradientMatch", "flat_gradient", "global_mean", "match_gradients", "pcgrad_correction"]


def flat_gradient(
    loss: torch.Tensor, params: Sequence[nn.Parameter], create_graph: bool
) -> torch.Tensor:
    """``d loss / d params`` flattened into one vector (zeros for parameters the loss does not reach).

    The graph is kept (``retain_graph=True``) for the final backward pass.
    """
    grads = torch.autograd.grad(loss, list(params), retain_graph=True, create_graph=create_graph, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


def global_mean(gradient: torch.Tensor) -> torch.Tensor:
    """The mean of ``gradient`` over all ranks in value, with the derivative of the rank's own ``gradient``."""
    if not is_distributed():
        return gradient
    mean = gradient.detach().clone()
    dist.all_reduce(mean)
    mean /= dist.get_world_size()
    return gradient + (mean - gradient.detach())


def pcgrad_correction(g_ssl: torch.Tensor, g_ref: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``(g_ssl' + g_ref') - (g_ssl + g_ref)`` of PCGrad for two tasks (zero when they do not conflict).

    Shapes:
        two vectors ``(N,)``; returns ``(N,)`` (detached).
    """
    g_ssl, g_ref = g_ssl.detach(), g_ref.detach()
    dot = torch.dot(g_ssl, g_ref)
    if dot >= 0:
        return torch.zeros_like(g_ssl)
    return -dot / (g_ref.pow(2).sum() + eps) * g_ref - dot / (g_ssl.pow(2).sum() + eps) * g_ssl


@dataclass
class GradientMatch:
    """What :func:`match_gradients` adds to the loss and what it measured.

    Attributes:
        loss: the penalty plus the zero-valued projection term (a scalar to add to the total loss).
        cosine: ``cos(g_ssl, g_ref)`` of the global gradients.
        penalty: the value of ``lambda * (1 - cos)``.
        conflict: 1.0 when ``<g_ssl, g_ref> < 0``, else 0.0 (a float, so its epoch mean is the conflict rate).
        correction_norm: ``||delta||`` of the PCGrad correction (0 without projection or conflict).
    """

    loss: torch.Tensor
    cosine: float
    penalty: float
    conflict: float
    correction_norm: float


def match_gradients(
    ssl_loss: torch.Tensor,
    reference_loss: torch.Tensor,
    params: Sequence[nn.Parameter],
    penalty_weight: float = 0.1,
    projection: bool = False,
    eps: float = 1e-12,
) -> GradientMatch:
    """The ReFs gradient-matching term for one step (see the module docstring for the formulas and why).

    Args:
        ssl_loss: the self-supervised loss (the method's weighted discriminative + restorative + adversarial sum).
        reference_loss: the weighted supervised reference loss.
        params: the shared parameters (the encoder's trainable ones).
        penalty_weight: ``lambda`` of the cosine penalty (0: no penalty, no second-order graph).
        projection: add the PCGrad correction for conflicting gradients.
        eps: numerical floor of the norms.

    Returns:
        A :class:`GradientMatch`; add ``.loss`` to ``ssl_loss + reference_loss`` before the backward pass.

    Raises:
        ValueError: no shared parameter, or a negative ``penalty_weight``.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("gradient matching needs shared parameters that require gradients (is the encoder frozen?).")
    if penalty_weight < 0:
        raise ValueError(f"penalty_weight must be non-negative, got {penalty_weight}.")
    create_graph = penalty_weight > 0
    g_ssl = global_mean(flat_gradient(ssl_loss, params, create_graph))
    g_ref = global_mean(flat_gradient(reference_loss, params, create_graph))
    dot = torch.dot(g_ssl, g_ref)
    cosine = dot / (g_ssl.norm() * g_ref.norm() + eps)
    extra = ssl_loss.new_zeros(())
    penalty = ssl_loss.new_zeros(())
    if create_graph:
        penalty = penalty_weight * (1.0 - cosine)
        extra = extra + penalty
    correction_norm = 0.0
    if projection:
        delta = pcgrad_correction(g_ssl, g_ref, eps)
        correction_norm = float(delta.norm())
        if correction_norm > 0:
            flat = torch.cat([p.reshape(-1) for p in params]).float()
            surrogate = torch.dot(delta.float(), flat)
            extra = extra + (surrogate - surrogate.detach())
    return GradientMatch(extra, float(cosine.detach()), float(penalty.detach()), float(dot < 0), correction_norm)
