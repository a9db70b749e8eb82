"""In-painting changes only its boxes; out-painting keeps exactly its boxes; sizes, counts and fills as configured."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from common.transforms import RandInPaintd, RandOutPaintd


def _image(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Intensities in [2, 3]: never equal to a fill value drawn from [0, 1), so 'unchanged' is exact."""
    return torch.from_numpy(np.random.RandomState(seed).rand(*shape).astype(np.float32) + 2.0)


def _union(boxes: list, spatial: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(spatial, dtype=bool)
    for box in boxes:
        mask[box] = True
    return mask


def _edges(box: tuple[slice, ...]) -> list[int]:
    return [s.stop - s.start for s in box]


@pytest.mark.parametrize("spatial", [(64, 64, 32), (60, 48)])
def test_inpainting_changes_exactly_its_boxes(spatial: tuple[int, ...]) -> None:
    transform = RandInPaintd("image")
    transform.set_random_state(seed=0)
    img = _image((2, *spatial))
    for _ in range(10):
        out = transform({"image": img})["image"]
        changed = (out != img).numpy()
        assert np.array_equal(changed[0], changed[1])  # the same boxes in every channel
        assert np.array_equal(changed[0], _union(transform.boxes, spatial))
        assert out[torch.from_numpy(changed)].min() >= 0 and out[torch.from_numpy(changed)].max() <= 1
        assert 1 <= len(transform.boxes) <= 5
        for box in transform.boxes:
            for s, dim in zip(box, spatial):
                assert dim // 6 <= s.stop - s.start <= dim // 3
                assert s.start >= 3 and s.stop <= dim - 3


def test_inpainting_box_count_follows_the_continuation_chain() -> None:
    counts = {0: [], 1: []}
    for min_boxes in counts:
        transform = RandInPaintd("image", min_boxes=min_boxes)
        transform.set_random_state(seed=1)
        for _ in range(400):
            transform.randomize((32, 32, 16))
            counts[min_boxes].append(len(transform.boxes))
    always, genesis = np.array(counts[1]), np.array(counts[0])
    assert always.min() == 1 and always.max() == 5
    assert 0.75 < np.mean(always == 5) < 0.9  # 0.95 ** 4 = 0.81
    assert 5 <= np.sum(genesis == 0) <= 40  # the reference gates the first box too: 5 % of 400 = 20


def test_transvw_inpainting_is_one_constant_box() -> None:
    transform = RandInPaintd("image", max_boxes=1, size_range=(10, 20), fill="constant")
    transform.set_random_state(seed=2)
    img = _image((1, 64, 64, 32))
    values = set()
    for _ in range(5):
        out = transform({"image": img})["image"]
        (box,) = transform.boxes
        assert all(10 <= e <= 20 for e in _edges(box))
        inside = out[(slice(None), *box)]
        assert torch.all(inside == inside.flatten()[0]) and 0 <= float(inside.flatten()[0]) <= 1
        values.add(float(inside.flatten()[0]))
        outside = torch.from_numpy(~_union([box], (64, 64, 32)))[None]
        assert torch.equal(out[outside], img[outside])
    assert len(values) == 5  # a new constant per call


@pytest.mark.parametrize("spatial", [(64, 64, 32), (56, 42)])
def test_outpainting_with_one_box_keeps_exactly_one_box_of_the_original(spatial: tuple[int, ...]) -> None:
    transform = RandOutPaintd("image", max_boxes=1)
    transform.set_random_state(seed=3)
    img = _image((1, *spatial))
    for _ in range(5):
        out = transform({"image": img})["image"]
        unchanged = (out == img).numpy()[0]
        labels, count = ndimage.label(unchanged)
        assert count == 1  # one connected region of original voxels...
        (found,) = ndimage.find_objects(labels)
        assert unchanged[found].all()  # ...which is a full box...
        assert found == transform.boxes[0]  # ...the drawn one
        for s, dim in zip(found, spatial):
            assert dim - 4 * dim // 7 <= s.stop - s.start <= dim - 3 * dim // 7
            assert s.start >= 3 and s.stop <= dim - 3
        noise = out[0][torch.from_numpy(~unchanged)]
        assert noise.min() >= 0 and noise.max() <= 1


def test_outpainting_keeps_exactly_the_union_of_its_boxes() -> None:
    transform = RandOutPaintd("image")
    transform.set_random_state(seed=4)
    img = _image((2, 48, 48, 24))
    sizes = []
    for _ in range(20):
        out = transform({"image": img})["image"]
        unchanged = (out == img).numpy()
        assert np.array_equal(unchanged[0], unchanged[1])
        assert np.array_equal(unchanged[0], _union(transform.boxes, (48, 48, 24)))
        assert not np.array_equal(out[0].numpy(), out[1].numpy())  # every channel gets its own noise
        sizes.append(len(transform.boxes))
    assert min(sizes) >= 1 and max(sizes) == 5


def test_transvw_outpainting_keeps_one_box_in_a_constant() -> None:
    transform = RandOutPaintd("image", max_boxes=1, shrink_range=(10, 20), fill="constant")
    img = _image((1, 64, 64, 32))
    out = transform({"image": img})["image"]
    (box,) = transform.boxes
    assert all(dim - 20 <= e <= dim - 10 for e, dim in zip(_edges(box), (64, 64, 32)))
    outside = torch.from_numpy(~_union([box], (64, 64, 32)))[None]
    assert torch.equal(out[(slice(None), *box)], img[(slice(None), *box)])
    assert torch.all(out[outside] == out[outside][0])


def test_fill_range_none_uses_the_image_range() -> None:
    img = torch.randn(1, 32, 32, 16, generator=torch.Generator().manual_seed(0)) * 3
    for transform in (RandInPaintd("image", fill_range=None), RandOutPaintd("image", fill_range=None)):
        out = transform({"image": img})["image"]
        assert out.min() >= img.min() and out.max() <= img.max()
        assert not torch.equal(out, img)


@pytest.mark.parametrize(
    "factory,message",
    [
        (lambda: RandInPaintd("image", max_boxes=0), "max_boxes"),
        (lambda: RandInPaintd("image", min_boxes=6), "min_boxes"),
        (lambda: RandInPaintd("image", box_prob=1.2), "box_prob"),
        (lambda: RandInPaintd("image", fill="gaussian"), "fill must be one of"),
        (lambda: RandInPaintd("image", size_fraction=(0.5, 0.2)), "low <= high"),
        (lambda: RandInPaintd("image", size_fraction=(0.5, 1.5)), "size_fraction"),
        (lambda: RandInPaintd("image", size_range=(10.5, 20)), "integers"),
        (lambda: RandInPaintd("image", margin=-1), "margin"),
        (lambda: RandOutPaintd("image", shrink_fraction=(0.5, 1.0)), "shrink_fraction"),
        (lambda: RandOutPaintd("image", shrink_range=(-2, 3)), "shrink_range"),
        (lambda: RandOutPaintd("image", fill_range=(1.0, 0.0)), "fill_range"),
    ],
)
def test_invalid_arguments(factory, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        factory()


def test_boxes_that_cannot_fit_are_refused_with_the_axis_and_shape() -> None:
    with pytest.raises(ValueError, match=r"edges in \[10, 20\] .* axis 0 of size 12 \(spatial shape \(12, 40, 40\)\)"):
        RandInPaintd("image", size_range=(10, 20))({"image": torch.rand(1, 12, 40, 40)})
    with pytest.raises(ValueError, match="do not fit"):
        RandOutPaintd("image", shrink_range=(0, 1))({"image": torch.rand(1, 16, 16)})
    # the largest box decides, so a too-small image fails on the first call rather than at random
    # (Genesis out-painting at depth 12: edges 12 - [5, 6] = [6, 7], and 7 + 2 * 3 > 12)
    transform = RandOutPaintd("image", max_boxes=1)
    transform.set_random_state(seed=0)
    with pytest.raises(ValueError, match=r"edges in \[6, 7\] .* axis 2 of size 12"):
        transform({"image": torch.rand(1, 32, 32, 12)})
