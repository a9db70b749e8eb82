"""Export each component of a finished stage as its own state dict (``encoder.pt``, ``decoder.pt``, ...)."""

from __future__ import annotations

import json
import logging
import os

import torch
from ignite.engine import Engine, Events

from common.data.atomic import atomic_output
from common.engines.distributed import unwrap

__all__ = ["ComponentExporter", "MANIFEST", "MODEL", "TASK"]

MANIFEST = "components.json"
#: The image-to-image network the model's ``restorer()`` returns (e.g. :class:`~common.networks.Restorer`), stage >= 2.
MODEL = "model.pt"
#: The task's state (EMA copies, queues), when it has any; the next stage loads it when it hands off ``task``.
TASK = "task.pt"


class ComponentExporter:
    """At the end of training, write ``<output_dir>/<component>.pt`` for every component of the stage.

    Files hold plain ``state_dict``s of each component the model lists (``encoder.pt``: e.g.
    :class:`~common.networks.GenesisEncoder`; ``head.pt``; ``decoder.pt`` from stage 2; a method's extra parts),
    of the critic (``adversary.pt``, stage 3) and of the task's state (``task.pt``, when it has any), with no
    wrapper prefix, so ``GenesisEncoder(...).load_state_dict(torch.load("encoder.pt"))`` works. From stage 2 on,
    ``model.pt`` holds the model's ``restorer()`` (for the Genesis U-Net a :class:`~common.networks.Restorer` with
    ``encoder.*``, ``decoder.*`` keys): the ``network_def`` of the bundle's inference config, for ``ckpt_export``
    and MONAI Label. A ``components.json`` manifest records the files, tensor and parameter counts, and the
    epoch/iteration they come from. Attach on rank 0 only.

    Args:
        output_dir: the stage directory.
    """

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    @staticmethod
    def _save(module: torch.nn.Module, path: str) -> int:
        """Save ``module``'s state dict on the CPU, atomically; return its number of tensors."""
        state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
        with atomic_output(path) as tmp:
            torch.save(state, tmp)
        return len(state)

    def __call__(self, engine: Engine) -> None:
        model = unwrap(engine.network)
        components = dict(model.components())
        adversary = getattr(engine, "adversary", None)
        if adversary is not None:
            components["adversary"] = adversary
        task = getattr(engine, "task", None)
        if task is not None and len(task.state_dict()) > 0:
            components["task"] = task
        manifest = {"epoch": engine.state.epoch, "iteration": engine.state.iteration, "components": {}}
        for name, module in components.items():
            manifest["components"][name] = {
                "file": f"{name}.pt",
                "class": type(module).__name__,
                "tensors": self._save(module, os.path.join(self.output_dir, f"{name}.pt")),
                "parameters": sum(p.numel() for p in module.parameters()),
            }
        restorer = model.restorer() if hasattr(model, "restorer") else None
        if restorer is not None:
            tensors = self._save(restorer, os.path.join(self.output_dir, MODEL))
            manifest["model"] = {"file": MODEL, "class": type(restorer).__name__, "tensors": tensors}
        with atomic_output(os.path.join(self.output_dir, MANIFEST)) as tmp:
            tmp.write_text(json.dumps(manifest, indent=2))
        self.logger.info(f"exported {', '.join(f'{n}.pt' for n in components)} to {self.output_dir}")
