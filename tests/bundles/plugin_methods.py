"""Two methods defined only in the tests, to prove the plug-in point on the hard cases. Not part of the project.

* **Two views with an EMA target** (BYOL-like): the online network runs on both views with gradients, through the
  possibly DDP-wrapped network; an EMA copy of encoder and projector (task state) gives the targets.
* **A conditioned decoder**: a model subclass whose decoder is modulated by an extra input (a flip code, as PCRL
  conditions on its augmentation vector), restoring two candidates, each against its own target.

``test_plugin_task.py`` runs both through the rotation bundle's configs and the unchanged trainer;
``test_plugin_ddp.py`` checks the two-view method's gradients under DistributedDataParallel.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, Randomizable
from torch import nn

from common.networks import UnitedModel
from common.tasks import DiscriminativeTask, Restoration, TaskOutputs


class RandTwoFlipsd(Randomizable, MapTransform):
    """``image`` and ``view2``: the cube flipped along independent random axes; ``target``: the cube as it was.

    ``flips`` is the 3-bit code of ``image``'s flips (what the conditioned decoder must undo).
    """

    def __init__(self, keys: str = "image") -> None:
        MapTransform.__init__(self, keys)
        self._codes = (torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool))

    def randomize(self, data: Any = None) -> None:
        self._codes = tuple(torch.as_tensor(self.R.rand(3) < 0.5) for _ in range(2))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        self.randomize()
        for key in self.key_iterator(d):
            cube = torch.as_tensor(d[key])
            d["target"] = cube.clone()
            d[key], d["view2"] = (flip(cube, code) for code in self._codes)
        d["flips"] = self._codes[0].float()
        return d


def flip(cube: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Flip a ``(C, *S)`` cube along the spatial axes whose bit is set."""
    axes = [i + 1 for i, bit in enumerate(code.tolist()) if bit]
    return cube.flip(axes) if axes else cube


class TwoViewEMATask(DiscriminativeTask):
    """BYOL-style: predict the EMA target's projection of the other view, ``2 - 2 cos``, symmetrised.

    State: ``target`` (frozen copies of encoder and head) and ``updates`` (EMA updates so far).

    Args:
        momentum: EMA momentum of the target network.
    """

    def __init__(self, momentum: float = 0.9) -> None:
        super().__init__()
        self.momentum = momentum

    def build_state(self, model: nn.Module) -> None:
        self.target = copy.deepcopy(nn.ModuleDict({"encoder": model.encoder, "head": model.head})).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def _target(self, image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.target["head"](self.target["encoder"](image)[-1])

    def run(self, network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
        online1 = network(batch["image"])  # both views through the (DDP-wrapped) network, with gradients
        online2 = network(batch["view2"])
        outputs = {"p1": online1["head"], "p2": online2["head"], "z1": self._target(batch["image"]), "z2": self._target(batch["view2"])}
        restorations = []
        if "reconstruction" in online1:
            restorations.append(Restoration(online1["reconstruction"], batch["target"], batch["image"]))
        return TaskOutputs(outputs, restorations)

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        def byol(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            return (2 - 2 * F.cosine_similarity(p.float(), z.float(), dim=1)).mean()

        loss = 0.5 * (byol(outputs["p1"], outputs["z2"]) + byol(outputs["p2"], outputs["z1"]))
        return loss, {"cosine": float(1 - loss.item() / 2)}

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        online = {"encoder": model.encoder, "head": model.head}
        for name, target in self.target.items():
            for t, o in zip(target.parameters(), online[name].parameters()):
                t.mul_(self.momentum).add_(o.detach(), alpha=1 - self.momentum)
        self.updates += 1  # BatchNorm statistics of the copies come from their own forward passes (rank-local)


class ConditionedModel(UnitedModel):
    """A United model whose decoder sees the bottleneck scaled channel-wise by ``sigmoid(film(condition))``.

    ``forward(image, conditions)`` decodes once per condition vector and returns ``reconstructions`` (a list).
    ``film`` is a trainable component of its own (exported as ``film.pt``); ``restorer()`` is the
    image-to-image module with the zero condition ("no flip to undo").

    Args:
        encoder, head, decoder: as :class:`~common.networks.UnitedModel`.
        condition_dim: length of the condition vector.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module | None = None, decoder: nn.Module | None = None, condition_dim: int = 3) -> None:
        super().__init__(encoder, head, decoder)
        self.condition_dim = condition_dim
        self.film = nn.Linear(condition_dim, encoder.out_channels[-1]) if decoder is not None else None

    def components(self) -> dict[str, nn.Module]:
        extra = {"film": self.film} if self.film is not None else {}
        return {**super().components(), **extra}

    def decode(self, features: list[torch.Tensor], condition: torch.Tensor) -> torch.Tensor:
        scale = torch.sigmoid(self.film(condition))[(...,) + (None,) * (features[-1].ndim - 2)]
        return self.decoder([*features[:-1], features[-1] * scale])

    def forward(self, image: torch.Tensor, conditions: list[torch.Tensor] | None = None) -> dict[str, Any]:
        features = self.encoder(image)
        out: dict[str, Any] = {"features": features, "head": self.head(features[-1])}
        if self.decoder is not None:
            out["reconstructions"] = [self.decode(features, c) for c in conditions]
        return out

    def restorer(self) -> nn.Module | None:
        return ConditionedRestorer(self) if self.decoder is not None else None


class ConditionedRestorer(nn.Module):
    """``image -> reconstruction`` of a :class:`ConditionedModel` with the zero condition."""

    def __init__(self, model: ConditionedModel) -> None:
        super().__init__()
        self.encoder, self.decoder, self.film = model.encoder, model.decoder, model.film
        self.condition_dim = model.condition_dim

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.encoder(image)
        condition = image.new_zeros(image.shape[0], self.condition_dim)
        scale = torch.sigmoid(self.film(condition))[(...,) + (None,) * (features[-1].ndim - 2)]
        return self.decoder([*features[:-1], features[-1] * scale])


class FlipCodeTask(DiscriminativeTask):
    """Predict the 3 flip bits (BCE on the head's 3 logits); restore two candidates from one encoding:

    * decoded with the flip code: the un-flipped cube (``target``);
    * decoded with the zero code: the input as it is (``image``).
    """

    def run(self, network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
        image, code = batch["image"], batch["flips"]
        out = network(image, [code, torch.zeros_like(code)])
        restorations = []
        if "reconstructions" in out:
            undo, keep = out["reconstructions"]
            restorations = [Restoration(undo, batch["target"], image), Restoration(keep, image, image)]
        return TaskOutputs(out, restorations)

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        logits = outputs["head"].float()
        accuracy = ((logits > 0) == (batch["flips"] > 0.5)).float().mean().item()
        return F.binary_cross_entropy_with_logits(logits, batch["flips"]), {"bit_accuracy": accuracy}
