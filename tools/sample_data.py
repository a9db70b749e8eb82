"""Prepare the real sample CT/MR volumes and their datalist (command line).

Usage, from the repository root::

    python tools/sample_data.py                      # into $UNITED_SSL_DATA or .cache/sample_data
    python tools/sample_data.py --cache_dir DIR      # somewhere else
    python tools/sample_data.py --force              # rebuild even if complete
    python tools/sample_data.py --sdist totalsegmentator-2.18.0.tar.gz   # offline, from a downloaded archive
    python tools/sample_data.py --slices_2d          # also axial 2D slices for 2D bundles (bundles/dira_2d)

The first run downloads the 38 MB source distribution of ``totalsegmentator==2.18.0`` from PyPI
with pip; later runs find the prepared folder complete and do nothing. ``--slices_2d`` then writes
``<cache>/slices_2d/datalist.json`` with the slices of every volume (see ``common/data/slices.py``;
``--gap_mm`` sets the distance between two kept slices).
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import fire

from common.data.datalist import DATALIST_KEYS, read_datalist_json
from common.data.sample_data import prepare_sample_data, prepare_sample_slices, summarize_datalist


def main(
    cache_dir: str | None = None, force: bool = False, sdist: str | None = None, slices_2d: bool = False, gap_mm: float = 6.0
) -> None:
    """Prepares the sample data, then prints the datalist path and one line per volume.

    Args:
        cache_dir: destination folder (default: ``$UNITED_SSL_DATA`` or ``<repo>/.cache/sample_data``).
        force: rebuild even if the datalist and all its files are present (with ``slices_2d``: the slices).
        sdist: an already-downloaded ``totalsegmentator-2.18.0.tar.gz``; skips pip.
        slices_2d: also write axial 2D slices and their datalist (``<cache>/slices_2d/datalist.json``).
        gap_mm: with ``slices_2d``, the distance in mm between two kept slices of a volume.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.monotonic()
    if slices_2d:
        path = prepare_sample_slices(cache_dir=cache_dir, force=force, sdist=sdist, gap_mm=gap_mm)
        print(f"2D datalist: {path} ({time.monotonic() - start:.1f} s)")
        data = read_datalist_json(path)
        for key in DATALIST_KEYS:
            if data.get(key):
                subjects = Counter(e.get("subject", "?") for e in data[key])
                print(f"  {key}: {len(data[key])} slices ({', '.join(f'{s}: {n}' for s, n in sorted(subjects.items()))})")
        return
    path = prepare_sample_data(cache_dir=cache_dir, force=force, sdist=sdist)
    print(f"Datalist: {path} ({time.monotonic() - start:.1f} s)")
    for line in summarize_datalist(path):
        print("  " + line)


if __name__ == "__main__":
    fire.Fire(main)
