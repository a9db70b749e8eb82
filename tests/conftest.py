"""Shared pytest setup: two threads and a fixed torch seed for every test."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

torch.set_num_threads(2)
# the data check's per-file cache goes to a temporary folder, not to the user's ~/.cache
os.environ.setdefault("UNITED_SSL_CHECK_CACHE", tempfile.mkdtemp(prefix="united-ssl-check-cache-"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
