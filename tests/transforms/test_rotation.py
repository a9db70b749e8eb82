"""The rotation pretext transform: every label is a distinct proper rotation, and the target undoes it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from common.transforms import ROTATION_GROUPS, RandRotationPretextd, apply_rotation, rotation_group


@pytest.mark.parametrize("name,size", [("c4", 4), ("d4", 8), ("cube", 24)])
def test_groups_are_closed_sets_of_proper_rotations(name: str, size: int) -> None:
    group = rotation_group(name)
    assert len(group) == size
    assert np.array_equal(group[0], np.eye(3))  # label 0 is "not rotated"
    for m in group:
        assert np.array_equal(m @ m.T, np.eye(3))  # orthogonal
        assert round(np.linalg.det(m)) == 1  # proper: no reflections
    for a, b in itertools.product(group, group):
        assert any(np.array_equal(a @ b, m) for m in group)  # closed under composition


@pytest.mark.parametrize("name", ROTATION_GROUPS)
def test_every_label_gives_a_different_volume(name: str) -> None:
    img = torch.rand(1, 6, 6, 6)
    outs = [apply_rotation(img, m) for m in rotation_group(name)]
    for i, j in itertools.combinations(range(len(outs)), 2):
        assert not torch.equal(outs[i], outs[j]), f"labels {i} and {j} give the same volume"


@pytest.mark.parametrize("name", ROTATION_GROUPS)
def test_voxels_move_by_the_rotation_matrix(name: str) -> None:
    size = 5  # odd: the centre is a voxel, centred coordinates are integers
    centre = np.array([2, 2, 2])
    for m in rotation_group(name):
        for point in [(0, 1, 4), (3, 0, 2), (4, 4, 1)]:
            img = torch.zeros(1, size, size, size)
            img[(0, *point)] = 1.0
            moved = np.argwhere(apply_rotation(img, m)[0].numpy() == 1.0)[0]
            assert np.array_equal(moved - centre, m @ (np.array(point) - centre))


def test_d4_about_depth_keeps_non_cubic_crops() -> None:
    img = torch.rand(1, 8, 8, 4)
    for m in rotation_group("d4", quarter_turn_axis=2):
        assert apply_rotation(img, m).shape == img.shape


def test_2d_quarter_turns() -> None:
    group = rotation_group("c4", spatial_dims=2)
    img = torch.arange(4.0).reshape(1, 2, 2)
    assert len({tuple(apply_rotation(img, m).flatten().tolist()) for m in group}) == 4
    with pytest.raises(ValueError, match="2D"):
        rotation_group("d4", spatial_dims=2)


def test_transform_outputs_label_target_and_rotated_image() -> None:
    transform = RandRotationPretextd(keys="image")
    transform.set_random_state(seed=3)
    img = torch.rand(1, 6, 6, 6)
    seen = set()
    for _ in range(200):
        out = transform({"image": img})
        label = int(out["label"])
        seen.add(label)
        assert out["label"].dtype == torch.long
        assert torch.equal(out["target"], img)
        rotation = transform.rotations[label]
        assert torch.equal(out["image"], apply_rotation(img, rotation))
        assert torch.equal(apply_rotation(out["image"], rotation.T), img)  # the target is the inverse rotation
    assert seen == set(range(8))


def test_transform_is_reproducible_with_a_seed() -> None:
    a, b = RandRotationPretextd("image"), RandRotationPretextd("image")
    a.set_random_state(seed=7)
    b.set_random_state(seed=7)
    img = torch.rand(1, 4, 4, 4)
    assert [int(a({"image": img})["label"]) for _ in range(20)] == [int(b({"image": img})["label"]) for _ in range(20)]


def test_transform_rejects_shapes_the_group_would_change() -> None:
    with pytest.raises(ValueError, match="changes the shape"):
        RandRotationPretextd("image", group="cube")({"image": torch.rand(1, 8, 8, 4)})
    with pytest.raises(ValueError, match="changes the shape"):
        RandRotationPretextd("image", group="d4", quarter_turn_axis=0, half_turn_axis=2)({"image": torch.rand(1, 8, 8, 4)})
    with pytest.raises(ValueError, match="spatial dims"):
        RandRotationPretextd("image")({"image": torch.rand(1, 8, 8)})


@pytest.mark.parametrize("kwargs", [{"group": "octahedral"}, {"quarter_turn_axis": 1, "half_turn_axis": 1}])
def test_invalid_groups(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RandRotationPretextd("image", **kwargs)
