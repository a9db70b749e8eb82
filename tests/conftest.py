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


@pytest.fixture(autouse=True)
def _text_locale_kept(request: pytest.FixtureRequest):
    """Restore the process's text locale after a test that changed it, with a warning naming that test.

    A library that calls ``setlocale(LC_ALL, "C")`` turns Python's default text encoding into ASCII, and every later
    ``open()`` of a UTF-8 file without an explicit encoding fails far from the cause.
    """
    import locale
    import warnings

    before = locale.setlocale(locale.LC_CTYPE)
    yield
    after = locale.setlocale(locale.LC_CTYPE)
    if after != before:
        locale.setlocale(locale.LC_CTYPE, before)
        warnings.warn(f"{request.node.nodeid} changed the text locale from {before!r} to {after!r}; restored", stacklevel=1)
