"""Prepare the real sample CT/MR volumes and their datalist (command line).

Usage, from the repository root::

    python tools/sample_data.py                      # into $UNITED_SSL_DATA or .cache/sample_data
    python tools/sample_data.py --cache_dir DIR      # somewhere else
    python tools/sample_data.py --force              # rebuild even if complete
    python tools/sample_data.py --sdist totalsegmentator-2.18.0.tar.gz   # offline, from a downloaded archive

The first run downloads the 38 MB source distribution of ``totalsegmentator==2.18.0`` from PyPI
with pip; later runs find the prepared folder complete and do nothing.
"""

from __future__ import annotations

import logging
import time

import fire

from common.data.sample_data import prepare_sample_data, summarize_datalist


def main(cache_dir: str | None = None, force: bool = False, sdist: str | None = None) -> None:
    """Prepares the sample data, then prints the datalist path and one line per volume.

    Args:
        cache_dir: destination folder (default: ``$UNITED_SSL_DATA`` or ``<repo>/.cache/sample_data``).
        force: rebuild even if the datalist and all its files are present.
        sdist: an already-downloaded ``totalsegmentator-2.18.0.tar.gz``; skips pip.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.monotonic()
    path = prepare_sample_data(cache_dir=cache_dir, force=force, sdist=sdist)
    print(f"Datalist: {path} ({time.monotonic() - start:.1f} s)")
    for line in summarize_datalist(path):
        print("  " + line)


if __name__ == "__main__":
    fire.Fire(main)
