"""Shared pytest setup: two threads, deterministic seeds, and the bundle paths."""

from __future__ import annotations

import os

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROTATION_BUNDLE = os.path.join(REPO_ROOT, "bundles", "rotation")

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
