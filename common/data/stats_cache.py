"""A per-file cache of :class:`~common.data.volume_stats.VolumeStats`, so large datalists are read once.

An entry is valid for one ``(absolute path, size, modification time)``: when a file changes, its size or
mtime changes and the entry is recomputed. A DICOM series folder's signature is the number, total size
and newest mtime of the files it directly holds.

Location (never inside a bundle's output folder, so stage folders stay reproducible and ``--overwrite``
of a stage never loses it): ``$UNITED_SSL_CHECK_CACHE`` if set, else
``$XDG_CACHE_HOME/united-ssl/volume-stats``, else ``~/.cache/united-ssl/volume-stats``. Each volume has one
small JSON file there, named by a hash of its absolute path (a changed file replaces its own entry, so the
folder does not grow with edits). Entries are written atomically; a folder that cannot be written only
disables caching. Deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from common.data.atomic import atomic_output
from common.data.volume_stats import VolumeStats, read_volume_stats

logger = logging.getLogger(__name__)

__all__ = ["CACHE_ENV", "STATS_VERSION", "StatsCache", "default_stats_cache_dir", "file_signature"]

#: Environment variable naming the cache folder.
CACHE_ENV = "UNITED_SSL_CHECK_CACHE"
#: Bumped whenever :class:`VolumeStats` or the way it is computed changes (older entries are ignored).
STATS_VERSION = 1


def default_stats_cache_dir() -> Path:
    """The cache folder: ``$UNITED_SSL_CHECK_CACHE``, ``$XDG_CACHE_HOME/united-ssl/volume-stats`` or
    ``~/.cache/united-ssl/volume-stats``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "united-ssl" / "volume-stats"


def file_signature(path: str | os.PathLike) -> list:
    """``[absolute path, size in bytes, mtime in ns]`` of a file, or of a DICOM folder's direct files
    (``[path, count, total size, newest mtime]``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
    """
    p = Path(path).absolute()
    st = p.stat()
    if not p.is_dir():
        return [str(p), st.st_size, st.st_mtime_ns]
    files = [f.stat() for f in p.iterdir() if f.is_file() and not f.name.startswith(".")]
    return [str(p), len(files), sum(f.st_size for f in files), max((f.st_mtime_ns for f in files), default=0)]


class StatsCache:
    """Reads volume statistics through a folder of per-file JSON entries.

    Args:
        folder: the cache folder; ``None`` for :func:`default_stats_cache_dir`; ``False`` to disable caching.

    Attributes:
        hits: entries served from the cache so far.
        misses: volumes read (and stored) so far.
    """

    def __init__(self, folder: str | os.PathLike | None | bool = None) -> None:
        if folder is False:
            self.folder: Path | None = None
        else:
            self.folder = default_stats_cache_dir() if folder in (None, True) else Path(folder).expanduser()
        self.hits = 0
        self.misses = 0

    def _entry(self, path: str | os.PathLike) -> Path:
        key = hashlib.sha256(str(Path(path).absolute()).encode()).hexdigest()[:32]
        return self.folder / f"{key}.json"  # type: ignore[operator]

    def lookup(self, path: str | os.PathLike) -> VolumeStats | None:
        """The cached statistics of ``path`` if its entry matches the file's current signature."""
        if self.folder is None:
            return None
        try:
            signature = file_signature(path)
            with open(self._entry(path), encoding="utf-8") as f:
                data = json.load(f)
            if data.get("version") != STATS_VERSION or data.get("signature") != signature:
                return None
            return VolumeStats.from_json(data["stats"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, path: str | os.PathLike, signature: list, stats: VolumeStats) -> None:
        """Writes the entry of ``path`` (errors only disable caching for it)."""
        if self.folder is None:
            return
        try:
            payload = {"version": STATS_VERSION, "signature": signature, "stats": stats.to_json()}
            with atomic_output(self._entry(path)) as tmp:
                tmp.write_text(json.dumps(payload), encoding="utf-8")
        except OSError as e:
            logger.debug("Cannot write the volume statistics cache in %s: %s", self.folder, e)

    def stats(self, path: str | os.PathLike) -> VolumeStats:
        """The statistics of ``path``: from the cache when valid, else read (and cached).

        Raises:
            Exception: what :func:`~common.data.volume_stats.read_volume_stats` raises; failures are not cached.
        """
        cached = self.lookup(path)
        if cached is not None:
            self.hits += 1
            return cached
        signature = file_signature(path) if os.path.exists(path) else None
        stats = read_volume_stats(path)
        self.misses += 1
        if signature is not None and signature == file_signature(path):  # unchanged while it was read
            self.store(path, signature, stats)
        return stats
