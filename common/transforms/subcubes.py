"""The 2x2(x2) grid of sub-cubes shared by the Jigsaw and Rubik's Cube pretext tasks.

Cells are numbered in C order over their grid positions: in 3D, cell ``4 a + 2 b + c`` lies at position
``(a, b, c)`` with ``a, b, c`` in {0, 1}, i.e. cell 0 is the corner at the origin and cell 7 the opposite corner.
Along every axis of size ``S`` the two cells have size ``s = (S - gap) / 2`` and start at ``0`` and ``s + gap``:
``gap`` voxels between them belong to no cell.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

__all__ = ["cell_size", "grid_cells", "seam_band", "place_cells"]

Cell = tuple[slice, ...]


def cell_size(spatial_shape: Sequence[int], gap: int = 0) -> tuple[int, ...]:
    """The size of one cell along every axis: ``(S - gap) / 2``.

    Raises:
        ValueError: when ``S - gap`` is not a positive even number along some axis (the message names the shape).
    """
    if int(gap) != gap or gap < 0:
        raise ValueError(f"gap must be a non-negative integer, got {gap!r}.")
    sizes = []
    for size in spatial_shape:
        if size - gap < 2 or (size - gap) % 2:
            raise ValueError(
                f"a 2-cell grid with a gap of {gap} voxels needs (size - gap) even and >= 2 along every axis; "
                f"spatial shape {tuple(spatial_shape)} does not fit (crop to 2 * cell + gap)."
            )
        sizes.append((size - gap) // 2)
    return tuple(sizes)


def grid_cells(spatial_shape: Sequence[int], gap: int = 0) -> list[Cell]:
    """The ``2 ** ndim`` cells of the grid as tuples of slices over the spatial axes, in C order.

    Args:
        spatial_shape: the image's spatial size ``S`` per axis.
        gap: voxels left out between the two cells of every axis.

    Returns:
        ``2 ** len(spatial_shape)`` tuples of slices, each cell of size :func:`cell_size`.
    """
    sizes = cell_size(spatial_shape, gap)
    starts = [(0, s + gap) for s in sizes]
    return [
        tuple(slice(start, start + s) for start, s in zip(position, sizes))
        for position in itertools.product(*starts)
    ]


def seam_band(size: int, width: int) -> slice:
    """The ``width`` voxels around the middle of an axis of ``size``: ``[size // 2 - width // 2, ... + width)``.

    For 64 voxels and width 5 this is voxels 30-34, the United Jigsaw gap; for width 10, voxels 27-36, the United
    Rubik's Cube gap.
    """
    if int(width) != width or not 0 <= width <= size:
        raise ValueError(f"band width must be an integer in [0, {size}], got {width!r}.")
    start = size // 2 - width // 2
    return slice(start, start + width)


def place_cells(img: torch.Tensor, permutation: Sequence[int], cells: Sequence[Cell]) -> torch.Tensor:
    """Re-assemble equal-size cells: slot ``i`` of the result receives the content of cell ``permutation[i]``.

    Args:
        img: ``(C, *S)``.
        permutation: a permutation of ``range(len(cells))``.
        cells: the grid cells (all of one size), e.g. :func:`grid_cells` with ``gap=0``.

    Returns:
        A new ``(C, *S)`` tensor; voxels outside every cell are copied unchanged.
    """
    if sorted(int(p) for p in permutation) != list(range(len(cells))):
        raise ValueError(f"{list(permutation)} is not a permutation of the {len(cells)} cells.")
    out = img.clone()
    for slot, piece in enumerate(permutation):
        out[(slice(None), *cells[slot])] = img[(slice(None), *cells[int(piece)])]
    return out
