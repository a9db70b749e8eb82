"""The frozen-encoder classifier: no gradient, batch-norm statistics untouched by training steps."""

from __future__ import annotations

import torch

from common.networks import ClassificationHead, GenesisEncoder
from common.transfer import EncoderClassifier, deepest_feature


def _classifier(freeze: bool) -> EncoderClassifier:
    encoder = GenesisEncoder(3, 1, 2, 3)
    return EncoderClassifier(encoder, ClassificationHead(3, 16, 3, conv_channels=None, hidden_features=None), freeze)


def test_frozen_encoder_does_not_change_during_training_steps() -> None:
    net = _classifier(freeze=True)
    before = {k: v.clone() for k, v in net.encoder.state_dict().items()}  # includes batch-norm running statistics
    head_before = [p.clone() for p in net.head.parameters()]
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        net.train()  # what MONAI's trainer does every iteration
        assert not net.encoder.training and net.head.training
        loss = torch.nn.functional.cross_entropy(net(torch.randn(4, 1, 8, 8, 8) * 3 + 1), torch.tensor([0, 1, 2, 0]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(torch.equal(net.encoder.state_dict()[k], v) for k, v in before.items())
    assert any(not torch.equal(a, b) for a, b in zip(net.head.parameters(), head_before))
    assert all(p.grad is None for p in net.encoder.parameters())


def test_unfrozen_encoder_trains() -> None:
    net = _classifier(freeze=False)
    net.train()
    assert net.encoder.training
    before = net.encoder.levels[0][0].conv.weight.clone()
    loss = net(torch.randn(2, 1, 8, 8, 8)).sum()
    loss.backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    assert not torch.equal(before, net.encoder.levels[0][0].conv.weight)


def test_deepest_feature() -> None:
    a, b = torch.zeros(1), torch.ones(1)
    assert deepest_feature([a, b]) is b and deepest_feature((a,)) is a and deepest_feature(b) is b
