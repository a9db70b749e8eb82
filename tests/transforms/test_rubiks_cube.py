"""The Rubik's Cube transform: each branch's target is the clean sub-cube it sees; flags, gap, ++ and + options."""

from __future__ import annotations

import pytest
import torch

from common.transforms import HALF_TURN_PLANES, RandRubiksCubed, grid_cells, half_turn

SUB, GAP = 16, 2
SIZE = 2 * SUB + GAP


def _octads(t: RandRubiksCubed, img: torch.Tensor, n: int):
    for _ in range(n):
        yield t({"image": img})


def _slots(x: torch.Tensor) -> list[torch.Tensor]:
    return list(x.reshape(8, -1, *x.shape[1:]))


def test_half_turns_are_proper_rotations_that_undo_themselves() -> None:
    cube = torch.rand(1, 4, 4, 4)
    for plane in HALF_TURN_PLANES:
        turned = half_turn(cube, plane)
        assert not torch.equal(turned, cube) and torch.equal(half_turn(turned, plane), cube)
    # a half-turn is the square of a quarter-turn in its plane: a rotation, not a reflection
    assert torch.equal(half_turn(cube, (0, 1)), torch.rot90(cube, 2, dims=(1, 2)))


def test_the_target_of_every_branch_is_the_clean_sub_cube_it_sees() -> None:
    img = torch.rand(1, SIZE, SIZE, SIZE)
    cells = grid_cells(img.shape[1:], GAP)
    t = RandRubiksCubed("image", num_permutations=24, gap=GAP)
    t.set_random_state(seed=0)
    turned_somewhere = 0
    for out in _octads(t, img, 20):
        perm = t.permutations[int(out["label"])]
        assert out["image"].shape == out["target"].shape == (8, SUB, SUB, SUB)
        for slot, (seen, target) in enumerate(zip(_slots(out["image"]), _slots(out["target"]))):
            piece = int(perm[slot])
            assert torch.equal(target, img[(slice(None), *cells[piece])])  # the clean sub-cube p[slot] ...
            plane = t.planes[piece]
            undone = seen if plane < 0 else half_turn(seen, HALF_TURN_PLANES[plane])
            assert torch.equal(undone, target)  # ... is exactly what this branch sees, once un-turned
            assert out["rotation"][slot] == float(plane >= 0)  # flags in branch order
            assert bool(out["rotation"][slot]) == (not torch.equal(seen, target))
            turned_somewhere += int(plane >= 0)
    assert 0.6 < turned_somewhere / 160 < 0.9  # rotate_prob 3/4


def test_the_gap_between_sub_cubes_is_left_out() -> None:
    img = torch.rand(1, SIZE, SIZE, SIZE)
    img[:, SUB : SUB + GAP] = -1
    img[:, :, SUB : SUB + GAP] = -1
    img[:, :, :, SUB : SUB + GAP] = -1
    t = RandRubiksCubed("image", num_permutations=8, gap=GAP, corruption=True, mask_prob=0.5)
    t.set_random_state(seed=1)
    for out in _octads(t, img, 10):
        assert out["image"].min() >= 0 and out["target"].min() >= 0  # no gap voxel in any sub-cube, no blank slab


def test_rubiks_cube_plus_plus_corrupts_only_turned_sub_cubes() -> None:
    img = torch.rand(1, SIZE, SIZE, SIZE) * 0.5 + 0.25
    t = RandRubiksCubed("image", num_permutations=8, gap=GAP, corruption=True)
    t.set_random_state(seed=2)
    names = set()
    for out in _octads(t, img, 20):
        perm = t.permutations[int(out["label"])]
        for slot, (seen, target) in enumerate(zip(_slots(out["image"]), _slots(out["target"]))):
            piece = int(perm[slot])
            plane, corruption = t.planes[piece], t.corrupted[piece]
            if plane < 0:
                assert corruption is None and torch.equal(seen, target)
            else:
                assert corruption is not None
                names.add(corruption)
                if corruption != "local_shuffle":  # a shuffle of 1-voxel blocks may change nothing
                    assert not torch.equal(half_turn(seen, HALF_TURN_PLANES[plane]), target)
    assert names == {"local_shuffle", "nonlinear", "inpaint", "outpaint"}


def test_rubiks_cube_plus_masks_and_flags_the_masked_sub_cubes() -> None:
    img = torch.rand(1, SIZE, SIZE, SIZE) * 0.5 + 0.25  # no zeros in the image itself
    t = RandRubiksCubed("image", num_permutations=8, gap=GAP, rotate_prob=0.0, mask_prob=0.5)
    t.set_random_state(seed=3)
    masked = 0
    for out in _octads(t, img, 10):
        assert out["rotation"].sum() == 0
        for slot, (seen, target) in enumerate(zip(_slots(out["image"]), _slots(out["target"]))):
            flag = bool(out["mask"][slot])
            assert flag == bool((seen == 0).any())  # a zero box exactly in the flagged sub-cubes
            assert flag != torch.equal(seen, target)
            masked += flag
    assert 20 < masked < 60
    assert "mask" not in RandRubiksCubed("image", num_permutations=8, gap=GAP)({"image": img})


def test_seeded_and_checked() -> None:
    img = torch.rand(1, SIZE, SIZE, SIZE)
    a = RandRubiksCubed("image", num_permutations=8, gap=GAP).set_random_state(seed=4)
    b = RandRubiksCubed("image", num_permutations=8, gap=GAP).set_random_state(seed=4)
    for x, y in zip(_octads(a, img, 3), _octads(b, img, 3)):
        assert all(torch.equal(x[k], y[k]) for k in ("image", "target", "label", "rotation"))
    with pytest.raises(ValueError, match="gap"):
        a({"image": torch.rand(1, SIZE + 1, SIZE, SIZE)})
    with pytest.raises(ValueError, match="one image key"):
        RandRubiksCubed(["image", "other"])
    with pytest.raises(ValueError, match="must not set"):
        RandRubiksCubed("image", inpaint={"prob": 0.5})
