"""The jigsaw transform: every class is a different arrangement, the gap is sized from the cube and tells nothing."""

from __future__ import annotations

import pytest
import torch

from common.transforms import RandJigsawd, gap_width, grid_cells, hamming_permutations, jigsaw


def test_every_permutation_index_gives_a_distinct_arrangement() -> None:
    img = torch.rand(1, 16, 16, 16)
    perms = hamming_permutations(1000, 8)
    outs = {jigsaw(img, p).numpy().tobytes() for p in perms}
    assert len(outs) == 1000


def test_slot_i_holds_sub_cube_p_i_outside_the_gap() -> None:
    img = torch.rand(1, 8, 8, 8)
    cells = grid_cells((8, 8, 8))
    for p in hamming_permutations(24, 8):
        out = jigsaw(img, p, gap_fraction=0.0)
        for slot, piece in enumerate(p):
            assert torch.equal(out[(slice(None), *cells[slot])], img[(slice(None), *cells[piece])])


@pytest.mark.parametrize("size,width", [(64, 5), (32, 3), (96, 8), (16, 1)])
def test_the_gap_band_is_sized_from_the_cube(size: int, width: int) -> None:
    assert gap_width(size, 5 / 64) == width
    out = jigsaw(torch.ones(1, size, size, size), hamming_permutations(2)[1])
    centre = size // 2 - width // 2
    in_band = torch.zeros(size, dtype=torch.bool)
    in_band[centre : centre + width] = True
    expected = in_band[:, None, None] | in_band[None, :, None] | in_band[None, None, :]  # the three seam planes
    assert torch.equal(out[0] == 0, expected)  # blank exactly there, whatever was shuffled
    if size == 64:
        assert in_band.nonzero().flatten().tolist() == [30, 31, 32, 33, 34]  # the official voxels 30-34


def test_the_gap_is_the_same_for_every_permutation() -> None:
    """The official code blanks the band before shuffling, so the blank faces of a sub-cube tell where it came from;
    here the band is blanked after re-assembly: the blanked voxels are identical whatever the class."""
    ones = torch.ones(1, 32, 32, 32)
    masks = {(jigsaw(ones, p) == 0).numpy().tobytes() for p in hamming_permutations(100)}
    assert len(masks) == 1


def test_transform_emits_label_and_the_original_as_target() -> None:
    img = torch.rand(1, 32, 32, 32)
    t = RandJigsawd("image", num_permutations=24)
    t.set_random_state(seed=0)
    labels = []
    for _ in range(20):
        out = t({"image": img})
        label = int(out["label"])
        labels.append(label)
        assert out["label"].dtype == torch.long and 0 <= label < 24
        assert torch.equal(out["target"], img)  # un-shuffled, no gap
        assert torch.equal(out["image"], jigsaw(img, t.permutations[label]))
    assert len(set(labels)) > 5
    t.set_random_state(seed=0)
    assert [int(t({"image": img})["label"]) for _ in range(20)] == labels  # seeded


def test_transform_refuses_odd_sizes_and_a_target_among_the_keys() -> None:
    t = RandJigsawd("image", num_permutations=8)
    with pytest.raises(ValueError, match="even"):
        t({"image": torch.rand(1, 32, 31, 32)})
    with pytest.raises(ValueError, match="target"):
        RandJigsawd(["image", "target"], num_permutations=8)
    with pytest.raises(ValueError, match="gap_fraction"):
        RandJigsawd("image", num_permutations=8, gap_fraction=0.6)


def test_2d_tiles() -> None:
    t = RandJigsawd("image", num_permutations=24, spatial_dims=2, gap_fraction=0.0)
    t.set_random_state(seed=1)
    img = torch.rand(1, 8, 8)
    out = t({"image": img})
    assert out["image"].shape == img.shape and sorted(out["image"].flatten().tolist()) == sorted(img.flatten().tolist())
