"""Stage hand-off: initialise a stage from the components the previous stage exported, strictly and loudly."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
from torch import nn

from common.handlers.stage_checkpoint import latest_checkpoint

__all__ = ["load_component", "load_previous_stage"]

logger = logging.getLogger(__name__)


def load_component(module: nn.Module, path: str, name: str) -> int:
    """Load an exported component state dict into ``module`` strictly.

    Args:
        module: the destination component.
        path: the exported ``<name>.pt`` file.
        name: component name, for messages.

    Returns:
        The number of tensors loaded.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        RuntimeError: keys or shapes differ, or a tensor holds NaN or infinite values (the message names the file
            and the keys).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"stage hand-off: {path} not found. Run the previous stage first, or point `previous_stage_dir` at the "
            f"folder holding its exported {name}.pt."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise RuntimeError(f"stage hand-off: {path} does not hold a state dict (got {type(state).__name__}).")
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k}: file {tuple(state[k].shape)} vs network {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or mismatched:
        raise RuntimeError(
            f"stage hand-off: {path} does not match the {name} of this stage "
            f"(did the width, levels or classes change between stages?).\n"
            f"  missing keys ({len(missing)}): {missing[:10]}\n  unexpected keys ({len(unexpected)}): {unexpected[:10]}\n"
            f"  shape mismatches ({len(mismatched)}): {mismatched[:10]}"
        )
    non_finite = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if non_finite:
        raise RuntimeError(
            f"stage hand-off: {path} holds NaN or infinite values in {len(non_finite)} tensors {non_finite[:10]}: the "
            f"stage that wrote it diverged. Re-run it (lower learning rate, gradient clipping) instead of building on it."
        )
    module.load_state_dict(state, strict=True)
    return len(state)


def load_previous_stage(
    model: nn.Module,
    previous_stage_dir: str | None,
    components: Sequence[str],
    adversary: nn.Module | None = None,
    stage_dir: str | None = None,
    task: nn.Module | None = None,
) -> dict[str, int]:
    """Initialise the listed components from ``<previous_stage_dir>/<component>.pt``.

    Call it in the bundle's ``initialize`` on the bare network, before any DistributedDataParallel wrap, so every
    rank starts from the same weights. When ``stage_dir`` already holds a resumable checkpoint of this stage the
    hand-off is skipped: the trainer resumes from that checkpoint instead. Model components are loaded first; a
    listed ``task`` is then set up from the loaded model (:meth:`~common.tasks.DiscriminativeTask.setup`) and its
    state (e.g. MoCo's key encoder and queue) loaded from ``task.pt``.

    Args:
        model: the model of this stage (e.g. :class:`~common.networks.UnitedModel`).
        previous_stage_dir: folder of the previous stage's exported components (``None`` when nothing is loaded).
        components: names to load: model components (``encoder``, ``head``, ``decoder``, ...), ``adversary``, ``task``.
        adversary: this stage's critic, when ``adversary`` is listed.
        stage_dir: this stage's folder, to detect a resumable checkpoint.
        task: this stage's discriminative task, when ``task`` is listed.

    Returns:
        Tensors loaded per component (empty when nothing was loaded).
    """
    if stage_dir is not None and (resume := latest_checkpoint(stage_dir)) is not None:
        logger.info(f"stage hand-off skipped: this stage resumes from {resume}")
        return {}
    loaded: dict[str, int] = {}
    if components and previous_stage_dir is None:
        raise ValueError(f"stage hand-off of {list(components)} needs previous_stage_dir; got None.")
    special = {"adversary": adversary, "task": task}
    for name in sorted(components, key=lambda n: n == "task"):  # the task is set up from the loaded model
        module = special[name] if name in special else getattr(model, name, None)
        if name == "task" and module is not None:
            module.setup(model)
        if module is None:
            raise ValueError(f"stage hand-off: this stage has no {name!r} component to initialise.")
        path = os.path.join(previous_stage_dir, f"{name}.pt")
        loaded[name] = load_component(module, path, name)
        logger.info(f"stage hand-off: loaded {name} ({loaded[name]} tensors) from {path}")
    return loaded
