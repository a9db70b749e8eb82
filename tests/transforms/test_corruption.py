"""What every image-only corruption promises: clean target, no in-place writes, seeds, 2D and 3D, clear errors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from common.transforms import (
    RandBezierIntensityd,
    RandCorruptiond,
    RandElasticDeformd,
    RandInPaintd,
    RandLocalPixelShuffled,
    RandOutPaintd,
    RandPatchSwapd,
)

FACTORIES: dict[str, Callable[..., RandCorruptiond]] = {
    "bezier": lambda **kw: RandBezierIntensityd(**kw),
    "local_shuffle": lambda **kw: RandLocalPixelShuffled(num_blocks=300, **kw),
    "inpaint": lambda **kw: RandInPaintd(**kw),
    "outpaint": lambda **kw: RandOutPaintd(**kw),
    "patch_swap": lambda **kw: RandPatchSwapd(patch_size_range=(4, 6), **kw),
    "elastic": lambda **kw: RandElasticDeformd(alpha=300.0, sigma=4.0, **kw),
}
SHAPES = {"2d": (1, 40, 36), "3d": (1, 32, 32, 20)}


def _image(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.RandomState(seed).rand(*shape).astype(np.float32))


@pytest.mark.parametrize("dims", SHAPES)
@pytest.mark.parametrize("name", FACTORIES)
def test_present_target_is_untouched_and_image_is_corrupted(name: str, dims: str) -> None:
    transform = FACTORIES[name](keys="image")
    transform.set_random_state(seed=0)
    img, target = _image(SHAPES[dims], 1), _image(SHAPES[dims], 2)
    target_copy = target.clone()
    out = transform({"image": img, "target": target})
    assert out["target"] is target and torch.equal(target, target_copy)  # bitwise untouched
    assert out["image"].shape == img.shape
    assert not torch.equal(out["image"], img), "prob=1 must corrupt the image"


@pytest.mark.parametrize("name", FACTORIES)
def test_missing_target_is_the_clean_image(name: str) -> None:
    transform = FACTORIES[name](keys="image")
    img = _image(SHAPES["3d"])
    out = transform({"image": img})
    assert torch.equal(out["target"], img)
    assert not torch.equal(out["image"], out["target"])
    assert "target" not in FACTORIES[name](keys="image", target_key=None)({"image": img})


@pytest.mark.parametrize("as_numpy", [False, True])
@pytest.mark.parametrize("name", FACTORIES)
def test_input_is_never_written_in_place(name: str, as_numpy: bool) -> None:
    img = _image(SHAPES["3d"])
    data = img.numpy().copy() if as_numpy else img.clone()
    FACTORIES[name](keys="image")({"image": data})
    assert np.array_equal(np.asarray(data), img.numpy())


@pytest.mark.parametrize("name", FACTORIES)
def test_seed_reproduces_the_corruption(name: str) -> None:
    img = _image(SHAPES["3d"])
    a, b, c = (FACTORIES[name](keys="image") for _ in range(3))
    a.set_random_state(seed=5)
    b.set_random_state(seed=5)
    c.set_random_state(seed=6)
    outs_a = [a({"image": img})["image"] for _ in range(3)]
    outs_b = [b({"image": img})["image"] for _ in range(3)]
    outs_c = [c({"image": img})["image"] for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(outs_a, outs_b))
    assert not all(torch.equal(x, y) for x, y in zip(outs_a, outs_c))
    assert not torch.equal(outs_a[0], outs_a[1])  # a new corruption per call


@pytest.mark.parametrize("name", FACTORIES)
def test_prob_zero_leaves_the_image_but_still_writes_the_target(name: str) -> None:
    img = _image(SHAPES["2d"])
    out = FACTORIES[name](keys="image", prob=0.0)({"image": img})
    assert torch.equal(out["image"], img) and torch.equal(out["target"], img)


@pytest.mark.parametrize("name", ["bezier", "local_shuffle", "patch_swap", "elastic"])
def test_every_key_gets_the_same_corruption(name: str) -> None:
    img = _image(SHAPES["3d"])
    out = FACTORIES[name](keys=["image", "other"])({"image": img, "other": img.clone()})
    assert torch.equal(out["image"], out["other"])
    assert torch.equal(out["target"], img)


@pytest.mark.parametrize("name", FACTORIES)
def test_invalid_inputs_raise_clear_errors(name: str) -> None:
    with pytest.raises(ValueError, match="target must stay uncorrupted"):
        FACTORIES[name](keys=["image", "target"])
    with pytest.raises(ValueError, match="prob must be a probability"):
        FACTORIES[name](keys="image", prob=1.5)
    with pytest.raises(ValueError, match="channel-first"):
        FACTORIES[name](keys="image")({"image": torch.rand(32)})
    with pytest.raises(ValueError, match="one spatial shape"):
        FACTORIES[name](keys=["image", "other"])({"image": torch.rand(1, 32, 32), "other": torch.rand(1, 32, 30)})
