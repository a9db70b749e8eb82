"""Shared pytest setup: two threads and a fixed torch seed for every test."""

from __future__ import annotations

import locale
import os
import tempfile
import warnings

import pytest
import torch

torch.set_num_threads(2)
# the data check's per-file cache goes to a temporary folder, not to the user's ~/.cache
os.environ.setdefault("UNITED_SSL_CHECK_CACHE", tempfile.mkdtemp(prefix="united-ssl-check-cache-"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


_TEXT_LOCALE = locale.setlocale(locale.LC_CTYPE)  # the process's text locale when the suite starts


def _restore_text_locale(when: str) -> None:
    current = locale.setlocale(locale.LC_CTYPE)
    if current != _TEXT_LOCALE:
        locale.setlocale(locale.LC_CTYPE, _TEXT_LOCALE)
        warnings.warn(f"{when} changed the text locale from {_TEXT_LOCALE!r} to {current!r}; restored", stacklevel=2)


@pytest.fixture(autouse=True)
def _text_locale_kept(request: pytest.FixtureRequest):
    """Restore the process's text locale around every test, with a warning naming what changed it.

    ITK's DICOM writer (GDCM) calls ``setlocale(LC_ALL, "C")``, which turns Python's default text encoding into
    ASCII: every later ``open()`` of a UTF-8 file without an explicit encoding then fails far from the cause. The
    check runs after the higher-scoped fixtures are set up (a session fixture writing DICOM) and after the test.
    """
    _restore_text_locale(f"a fixture set up for {request.node.nodeid}")
    yield
    _restore_text_locale(request.node.nodeid)
