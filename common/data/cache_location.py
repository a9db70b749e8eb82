"""Where the prepared sample data lives: the environment variable, the default folder and the datalist's name.

Kept apart from :mod:`common.data.sample_data` so that modules it imports (the datalist helpers and
the archive download, whose error messages point at the cache) can name the cache without an import
cycle.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Name of the datalist file inside a prepared sample data folder.
DATALIST_NAME = "datalist.json"
#: Environment variable that overrides the default sample data folder.
ENV_VAR = "UNITED_SSL_DATA"


def repo_root() -> Path:
    """Returns the repository root: the parent of the ``common`` package folder."""
    return Path(__file__).resolve().parents[2]


def default_cache_dir() -> str:
    """Returns the sample data folder: ``$UNITED_SSL_DATA`` if set, else ``<repo root>/.cache/sample_data``."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return str(Path(env).expanduser())
    return str(repo_root() / ".cache" / "sample_data")


__all__ = ["DATALIST_NAME", "ENV_VAR", "default_cache_dir", "repo_root"]
