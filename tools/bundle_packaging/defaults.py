"""Set top-level ids of a YAML config as text (comments kept): the packaged bundle's defaults.

A packaged ``models/model.pt`` must load into the packaged configs as they are, so the settings its run was made
with become their defaults: for a method bundle the run's ``run.json`` settings of the template sections that define
the network and what it sees (:data:`PINNED_SECTIONS`), except the data loader's throughput (:data:`THROUGHPUT_IDS`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from generate_bundles import parse_blocks  # noqa: E402

__all__ = ["PINNED_SECTIONS", "THROUGHPUT_IDS", "top_level", "pinned_settings", "set_ids", "append_ids", "yaml_value"]

#: Template sections whose recorded settings become the packaged defaults (the network, its input, the pretext task).
PINNED_SECTIONS = ("data", "networks", "proxy task")
#: Ids of those sections that only set how fast data is loaded (left at the bundle's defaults).
THROUGHPUT_IDS = frozenset({"batch_size", "num_samples", "cache_rate", "num_workers"})
_SCALARS = (str, int, float, bool, type(None))


def yaml_value(value: Any) -> str:
    """A value as one line of YAML (JSON flow style is YAML)."""
    return json.dumps(value)


def top_level(text: str) -> dict[str, str]:
    """``{id: raw first line value text}`` of a YAML config's top-level ids, with the id's section as ``section``."""
    return {b.key: b.section for b in parse_blocks(text) if b.key is not None}


def _raw(text: str, key: str) -> Any:
    import yaml

    return (yaml.safe_load(text) or {}).get(key)


def pinned_settings(train_text: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded ``settings`` that become the packaged defaults.

    An id of :data:`PINNED_SECTIONS` (but not :data:`THROUGHPUT_IDS`) is pinned when its config value is a literal, or
    when it is an expression or reference whose recorded value is a scalar (e.g. ``intensity_preset``, read from the
    datalist in the repository); a derived list or mapping (e.g. a generated permutation set) stays an expression of
    the pinned ids.
    """
    import yaml

    config = yaml.safe_load(train_text) or {}
    sections = top_level(train_text)
    pinned = {}
    for key, value in settings.items():
        if sections.get(key) not in PINNED_SECTIONS or key in THROUGHPUT_IDS or key not in config:
            continue
        raw = config[key]
        derived = isinstance(raw, str) and raw.startswith(("$", "@", "%"))
        if derived and not isinstance(value, _SCALARS):
            continue
        if not derived and raw == value:
            continue
        pinned[key] = value
    return pinned


def set_ids(text: str, values: Mapping[str, Any], note: str) -> str:
    """Replace the values of existing top-level ids (each line says it was packaged); ids the text lacks are skipped."""
    blocks = parse_blocks(text)
    for block in blocks:
        if block.key in values:
            first = block.lines[0]
            comment = ""
            if "  #" in first:
                comment = first[first.index("  #") :].strip()[1:].strip()
            line = f"{block.key}: {yaml_value(values[block.key])}"
            block.lines = [f"{line:<33} # {note}" + (f"; {comment}" if comment else "")]
    return "\n".join(line for b in blocks for line in b.text()) + "\n"


def append_ids(text: str, values: Mapping[str, Any], header: str) -> str:
    """Add (or, when present, replace) top-level ids at the end of a config, under a comment."""
    present = {k for k in values if k in top_level(text)}
    text = set_ids(text, {k: values[k] for k in present}, header)
    new = [k for k in values if k not in present]
    if not new:
        return text
    lines = [f"# {header}"] + [f"{k}: {yaml_value(values[k])}" for k in new]
    return text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
