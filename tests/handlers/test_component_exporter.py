"""ComponentExporter writes loadable per-component state dicts, a Restorer model.pt and a manifest."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import torch

from common.handlers import ComponentExporter
from common.networks import ClassificationHead, ConditionalPatchCritic, GenesisDecoder, GenesisEncoder, Restorer, UnitedModel


def _engine(decoder: bool, adversary: bool) -> SimpleNamespace:
    model = UnitedModel(
        GenesisEncoder(3, 1, 2, 3), ClassificationHead(3, 16, 4, None, None), GenesisDecoder(3, 1, 2, 3) if decoder else None
    )
    critic = ConditionalPatchCritic(3, base_channels=2, num_levels=3) if adversary else None
    return SimpleNamespace(network=model, adversary=critic, state=SimpleNamespace(epoch=3, iteration=30))


def test_stage3_export_loads_back_strictly(tmp_path) -> None:
    engine = _engine(decoder=True, adversary=True)
    ComponentExporter(str(tmp_path))(engine)
    assert sorted(os.listdir(tmp_path)) == [
        "adversary.pt", "components.json", "decoder.pt", "encoder.pt", "head.pt", "model.pt",
    ]
    encoder = GenesisEncoder(3, 1, 2, 3)
    encoder.load_state_dict(torch.load(tmp_path / "encoder.pt", weights_only=True))  # strict, no prefixes
    restorer = Restorer(GenesisEncoder(3, 1, 2, 3), GenesisDecoder(3, 1, 2, 3))
    restorer.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    x = torch.rand(1, 1, 8, 8, 8)
    engine.network.eval(), restorer.eval()
    assert torch.allclose(restorer(x), engine.network(x)["reconstruction"])
    manifest = json.load(open(tmp_path / "components.json"))
    assert (manifest["epoch"], manifest["iteration"]) == (3, 30)
    assert manifest["components"]["head"]["tensors"] == 2 and manifest["model"]["class"] == "Restorer"


def test_stage1_exports_no_decoder_and_no_model(tmp_path) -> None:
    ComponentExporter(str(tmp_path / "stage1"))(_engine(decoder=False, adversary=False))
    assert sorted(os.listdir(tmp_path / "stage1")) == ["components.json", "encoder.pt", "head.pt"]
