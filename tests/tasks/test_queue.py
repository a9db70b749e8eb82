"""The FIFO queue of keys: enqueue order, wrap-around, the oldest entries overwritten first, checks, state."""

from __future__ import annotations

import pytest
import torch

from common.tasks import FeatureQueue


def _keys(start: int, n: int, dim: int = 2) -> torch.Tensor:
    return torch.arange(start, start + n, dtype=torch.float32)[:, None].repeat(1, dim)


def test_starts_with_random_unit_vectors() -> None:
    queue = FeatureQueue(8, 4)
    torch.testing.assert_close(queue.features.norm(dim=1), torch.ones(8))
    assert int(queue.pointer) == 0 and int(queue.seen) == 0


def test_enqueue_fills_in_order_and_wraps_around() -> None:
    queue = FeatureQueue(5, 2)
    queue.enqueue(_keys(0, 3))  # slots 0, 1, 2
    assert torch.equal(queue.features[:3], _keys(0, 3)) and int(queue.pointer) == 3
    queue.enqueue(_keys(3, 3))  # slots 3, 4, then 0 (overwrites key 0, the oldest)
    assert torch.equal(queue.features, torch.cat([_keys(5, 1), _keys(1, 4)]))
    assert int(queue.pointer) == 1 and int(queue.seen) == 6
    assert torch.equal(queue.ordered(), _keys(1, 5))  # oldest (1) to newest (5)
    queue.enqueue(_keys(6, 5))  # a full queue's worth replaces everything
    assert torch.equal(queue.ordered(), _keys(6, 5)) and int(queue.pointer) == 1


def test_batch_size_need_not_divide_the_queue() -> None:
    queue = FeatureQueue(7, 1)
    for step in range(10):  # 3 keys per step into 7 slots: wraps at different offsets
        queue.enqueue(_keys(3 * step, 3, dim=1))
    assert torch.equal(queue.ordered(), _keys(23, 7, dim=1))  # the 7 newest of keys 0..29


def test_checks_name_the_problem() -> None:
    queue = FeatureQueue(4, 3)
    with pytest.raises(ValueError, match="global batch"):
        queue.enqueue(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="global batch"):
        queue.check_batch(8)
    queue.check_batch(4)
    with pytest.raises(ValueError, match=r"keys \(N, 3\)"):
        queue.enqueue(torch.zeros(2, 2))
    with pytest.raises(ValueError):
        FeatureQueue(0, 3)


def test_state_round_trip_restores_contents_and_position() -> None:
    queue = FeatureQueue(6, 2)
    queue.enqueue(_keys(0, 4))
    restored = FeatureQueue(6, 2)
    restored.load_state_dict(queue.state_dict())
    restored.enqueue(_keys(4, 4))
    queue.enqueue(_keys(4, 4))
    assert torch.equal(restored.features, queue.features) and int(restored.pointer) == int(queue.pointer) == 2
