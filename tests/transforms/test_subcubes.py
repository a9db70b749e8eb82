"""The 2x2(x2) grid: cell sizes and positions with a gap, the seam band, re-assembly."""

from __future__ import annotations

import pytest
import torch

from common.transforms import cell_size, grid_cells, place_cells, seam_band


def test_cells_with_a_gap_are_the_corners_of_the_cube() -> None:
    cells = grid_cells((74, 74, 74), gap=10)
    assert len(cells) == 8 and cell_size((74, 74, 74), 10) == (32, 32, 32)
    assert cells[0] == (slice(0, 32), slice(0, 32), slice(0, 32))
    assert cells[1] == (slice(0, 32), slice(0, 32), slice(42, 74))  # C order: the last axis varies fastest
    assert cells[7] == (slice(42, 74),) * 3
    covered = torch.zeros(74, 74, 74, dtype=torch.int64)
    for cell in cells:
        covered[cell] += 1
    assert covered.max() == 1  # no overlap
    assert covered[32:42].sum() == 0 and covered[:, 32:42].sum() == 0 and covered[:, :, 32:42].sum() == 0  # the gap


def test_sizes_that_do_not_split_are_refused_with_the_shape() -> None:
    with pytest.raises(ValueError, match=r"\(33, 32, 32\)"):
        grid_cells((33, 32, 32))
    with pytest.raises(ValueError):
        cell_size((10, 10), gap=10)


def test_seam_band_matches_the_official_indices() -> None:
    assert seam_band(64, 5) == slice(30, 35)  # Jigsaw: voxels 30-34
    assert seam_band(64, 10) == slice(27, 37)  # Rubik's Cube: voxels 27-36
    assert seam_band(32, 0) == slice(16, 16)


def test_place_cells_moves_cell_p_i_to_slot_i() -> None:
    img = torch.zeros(1, 4, 4)
    cells = grid_cells((4, 4))
    for j, cell in enumerate(cells):
        img[(slice(None), *cell)] = j
    out = place_cells(img, [2, 0, 3, 1], cells)
    assert [int(out[(0, *cell)].unique()) for cell in cells] == [2, 0, 3, 1]
    with pytest.raises(ValueError, match="not a permutation"):
        place_cells(img, [0, 0, 1, 2], cells)
