"""Generate every method bundle's configs from the shared template and the method's own few lines.

What all United method bundles share (data pipeline, stage ids, handlers, checkpointing, the DDP overlay, inference,
logging, licence, metadata boilerplate) is written once, in ``tools/bundle_template/``. What a method adds (its
proxy transform, task, head, defaults, metadata) is written in ``bundles/<name>/method.yaml``. This tool merges the
two into ``bundles/<name>/configs/*`` and ``bundles/<name>/LICENSE``: complete MONAI bundle files that
``python -m monai.bundle run``, MONAI Label and the model zoo read on their own. Generated files are committed; a
test fails when one is out of date, so a change to a shared part is made once and reaches every bundle.

Usage (from the repository root)::

    python tools/generate_bundles.py                 # regenerate every bundle that has a method.yaml
    python tools/generate_bundles.py --bundles rotation,jigsaw
    python tools/generate_bundles.py --check         # exit 1 and list the files that are out of date

``method.yaml`` is split into parts by lines ``# === <file>`` (``train.yaml``, ``stage2.yaml``, ``demo.yaml``,
``inference.yaml``, ``metadata.json``...). YAML parts are merged into the template's file of the same name by
top-level id, as text, so comments survive:

* an id the template has is replaced (the template's comment lines above it stay unless the method gives its own);
* a new id is inserted at the end of the template section named by the last ``# ---- <section>`` line above it
  in the method part (the template's sections are its ``# ------ <name>`` lines);
* the hyper-parameters of the merged ``train.yaml`` (ids of :data:`SETTINGS_SECTIONS`) that ``inference.yaml``
  also defines are copied there, so inference builds the network training built;
* ``run_settings`` in ``train.yaml`` is generated: every id of the template sections in :data:`SETTINGS_SECTIONS`.

The ``metadata.json`` part is YAML deep-merged into the template's JSON (mappings merged, other values replaced).
``{bundle}`` in template text becomes the bundle's folder name. A part for a file the template lacks is written as is.
Files of :data:`TEMPLATE_3D_ONLY` (``refs.yaml``) go only to bundles whose ``spatial_dims`` is 3.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import fire
import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE_DIR = os.path.join(REPO_ROOT, "tools", "bundle_template")
BUNDLES_DIR = os.path.join(REPO_ROOT, "bundles")
METHOD_FILE = "method.yaml"

#: Template sections whose ids are the run's hyper-parameters (recorded in run.json, fingerprinted), and other ids
#: recorded with them.
SETTINGS_SECTIONS = ("data", "networks", "proxy task", "loss", "optimisation")
SETTINGS_IDS = ("seed",)
#: Template files only bundles of 3D networks get (``spatial_dims`` of the merged ``train.yaml`` is 3): overlays whose
#: data pipeline and model wrapper are volumetric (``refs.yaml``: the ReFs reference task).
TEMPLATE_3D_ONLY = ("refs.yaml",)
#: Key order of the generated metadata.json (other keys follow in template order).
METADATA_ORDER = (
    "schema", "version", "changelog", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
    "name", "task", "description", "authors", "copyright",
)  # fmt: skip

_PART = re.compile(r"^# === (\S+)\s*$")
_SECTION = re.compile(r"^# -{4,} (.+?)\s*$")
_KEY = re.compile(r"^(\"[^\"]+\"|'[^']+'|[A-Za-z_+][\w#:.+-]*):(\s|$)")


@dataclass
class Block:
    """A top-level YAML id with the comment lines directly above it, or a run of other lines (``key=None``)."""

    key: str | None
    lines: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    section: str = ""

    def text(self) -> list[str]:
        return self.comments + self.lines


def parse_blocks(text: str) -> list[Block]:
    """Split YAML text into top-level id blocks and other lines, remembering each id's section.

    Continuation lines of an id are the indented lines (and blank lines inside them) after it; comment lines at
    column 0 directly above an id belong to it, unless they are section headers (``# ---- name``).
    """
    blocks: list[Block] = []
    pending: list[str] = []
    section = ""
    current: Block | None = None
    for line in text.splitlines():
        if current is not None and (line.startswith((" ", "\t")) or line == ""):
            current.lines.append(line)
            continue
        if current is not None:  # blank lines at the end of a block are layout, not content
            trailing = []
            while current.lines and current.lines[-1] == "":
                trailing.append(current.lines.pop())
            blocks.append(current)
            if trailing:
                blocks.append(Block(None, trailing))
            current = None
        if (match := _SECTION.match(line)) is not None:
            if pending:
                blocks.append(Block(None, pending))
                pending = []
            section = match.group(1)
            blocks.append(Block(None, [line], section=section))
        elif line.startswith("#"):
            pending.append(line)
        elif (match := _KEY.match(line)) is not None:
            current = Block(match.group(1).strip("\"'"), [line], pending, section)
            pending = []
        else:
            pending.append(line)
    if current is not None:
        trailing = []
        while current.lines and current.lines[-1] == "":
            trailing.append(current.lines.pop())
        blocks.append(current)
        if trailing:
            blocks.append(Block(None, trailing))
    if pending:
        blocks.append(Block(None, pending))
    return blocks


def merge_yaml(template: str, part: str, where: str) -> str:
    """Merge a method's YAML part into template text by top-level id (see the module docstring)."""
    blocks = parse_blocks(template)
    index = {b.key: i for i, b in enumerate(blocks) if b.key is not None}
    sections = {b.section for b in blocks if b.key is None and b.section}
    for block in parse_blocks(part):
        if block.key is None:
            continue
        if block.key in index:
            old = blocks[index[block.key]]
            old.lines = block.lines
            if block.comments:
                old.comments = block.comments
            continue
        if block.section and block.section not in sections:
            raise ValueError(
                f"{where}: id {block.key!r} is under section {block.section!r}, which the template does not have "
                f"(sections: {sorted(sections)})."
            )
        # after the last block of the section (or at the end when the part names no section)
        position = len(blocks)
        if block.section:
            start = next(i for i, b in enumerate(blocks) if b.key is None and b.section == block.section)
            position = start + 1
            while position < len(blocks) and not (blocks[position].key is None and blocks[position].section):
                position += 1
            while position > start + 1 and blocks[position - 1].key is None and not "".join(blocks[position - 1].lines).strip():
                position -= 1  # before the blank lines that end the section
        blocks.insert(position, block)
        index = {b.key: i for i, b in enumerate(blocks) if b.key is not None}
    return "\n".join(line for b in blocks for line in b.text()) + "\n"


def settings_block(train_text: str) -> list[str]:
    """The generated ``run_settings`` mapping: ``<id>: "@<id>"`` for every id of :data:`SETTINGS_SECTIONS`."""
    keys = [b.key for b in parse_blocks(train_text) if b.key is not None and b.section in SETTINGS_SECTIONS]
    keys = [k for k in SETTINGS_IDS if k not in keys] + keys
    return ["run_settings:                     # generated: every hyper-parameter above, recorded in <stage_dir>/run.json"] + [
        f'  {key}: "@{key}"' for key in keys
    ]


def _set_block(text: str, key: str, lines: list[str]) -> str:
    blocks = parse_blocks(text)
    for block in blocks:
        if block.key == key:
            block.lines = lines
    return "\n".join(line for b in blocks for line in b.text()) + "\n"


def deep_merge(base: Any, update: Any) -> Any:
    """``update`` merged into ``base``: mappings merged key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(update, dict):
        merged = dict(base)
        for key, value in update.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return update


def split_parts(text: str, where: str) -> tuple[str, dict[str, str]]:
    """The method file's leading comment and its parts by file name."""
    parts: dict[str, list[str]] = {}
    current: list[str] | None = None
    header: list[str] = []
    for line in text.splitlines():
        if (match := _PART.match(line)) is not None:
            name = match.group(1)
            if name in parts:
                raise ValueError(f"{where}: part {name!r} appears twice.")
            current = parts.setdefault(name, [])
        elif current is None:
            if line.strip() and not line.startswith("#"):
                raise ValueError(f"{where}: content before the first '# === <file>' line: {line!r}.")
            header.append(line)
        else:
            current.append(line)
    if "train.yaml" not in parts or "metadata.json" not in parts:
        raise ValueError(f"{where}: a method file needs at least the parts 'train.yaml' and 'metadata.json'.")
    return "\n".join(header).strip(), {k: "\n".join(v) + "\n" for k, v in parts.items()}


def _ordered_metadata(metadata: dict) -> dict:
    first = {k: metadata[k] for k in METADATA_ORDER if k in metadata}
    return {**first, **{k: v for k, v in metadata.items() if k not in first}}


def _banner(bundle: str, name: str, description: str) -> list[str]:
    lines = [f"# {description}" if description else f"# bundles/{bundle}"]
    return lines + [
        f"# GENERATED by tools/generate_bundles.py from tools/bundle_template/configs/{name} and bundles/{bundle}/{METHOD_FILE}:",
        "# edit those, then run `python tools/generate_bundles.py` (a test fails while this file is out of date).",
    ]


def spatial_dims(train_text: str) -> int | None:
    """``spatial_dims`` of a merged ``train.yaml`` (``None`` when it is not a plain integer)."""
    value = (yaml.safe_load(train_text) or {}).get("spatial_dims")
    return value if isinstance(value, int) else None


def render_bundle(bundle: str) -> dict[str, str]:
    """The generated files of one bundle, by path relative to the bundle folder."""
    where = os.path.join("bundles", bundle, METHOD_FILE)
    with open(os.path.join(BUNDLES_DIR, bundle, METHOD_FILE), encoding="utf-8") as f:
        header, parts = split_parts(f.read(), where)
    title = header.splitlines()[0].lstrip("# ").strip() if header else ""
    template_configs = os.path.join(TEMPLATE_DIR, "configs")
    files: dict[str, str] = {}
    settings: list[Block] = []  # the merged train.yaml's hyper-parameters, which inference.yaml must share
    names = sorted(set(os.listdir(template_configs)) | set(parts), key=lambda n: (n != "train.yaml", n))
    for name in names:
        if name in TEMPLATE_3D_ONLY and name not in parts and spatial_dims(files["configs/train.yaml"]) != 3:
            continue
        template_path = os.path.join(template_configs, name)
        template = open(template_path, encoding="utf-8").read() if os.path.isfile(template_path) else None
        if template is not None:
            template = template.replace("{bundle}", bundle)
        part = parts.get(name)
        if name == "metadata.json":
            metadata = deep_merge(json.loads(template), yaml.safe_load(part) or {})
            files[f"configs/{name}"] = json.dumps(_ordered_metadata(metadata), indent=4) + "\n"
            continue
        if template is None:
            files[f"configs/{name}"] = part
            continue
        if not name.endswith(".yaml"):
            if part is not None:
                raise ValueError(f"{where}: part {name!r} would replace a template file that is not YAML.")
            files[f"configs/{name}"] = template
            continue
        text = template
        if name == "inference.yaml":  # inference builds the network training built (ids of the template or the part)
            own = {b.key for b in parse_blocks(template + "\n" + (part or "")) if b.key is not None}
            text = merge_yaml(text, "\n".join(line for b in settings if b.key in own for line in b.lines), where)
        if part is not None:
            text = merge_yaml(text, part, f"{where} [{name}]")
        if name == "train.yaml":
            text = _set_block(text, "run_settings", settings_block(text))
            settings = [b for b in parse_blocks(text) if b.key is not None and b.section in SETTINGS_SECTIONS]
        files[f"configs/{name}"] = "\n".join(_banner(bundle, name, title)) + "\n" + text
    files["LICENSE"] = open(os.path.join(TEMPLATE_DIR, "LICENSE"), encoding="utf-8").read()
    return files


def method_bundles() -> list[str]:
    """Names of the bundles generated from the template (those with a ``method.yaml``)."""
    return sorted(d for d in os.listdir(BUNDLES_DIR) if os.path.isfile(os.path.join(BUNDLES_DIR, d, METHOD_FILE)))


def outdated(bundle: str) -> list[str]:
    """Paths (relative to the repository) of the bundle's generated files that differ from what is on disk."""
    stale = []
    for path, text in render_bundle(bundle).items():
        full = os.path.join(BUNDLES_DIR, bundle, path)
        if not os.path.isfile(full) or open(full, encoding="utf-8").read() != text:
            stale.append(os.path.relpath(full, REPO_ROOT))
    return stale


def generate(bundles: str | list[str] | None = None, check: bool = False) -> list[str]:
    """Write (or with ``check``, only compare) the generated files of the given bundles (default: all).

    Returns:
        The files written, or with ``check`` the files out of date (the process exits with 1 when there are any).
    """
    names = method_bundles() if not bundles else [b for b in (bundles.split(",") if isinstance(bundles, str) else bundles)]
    unknown = [b for b in names if b not in method_bundles()]
    if unknown:
        raise ValueError(f"no {METHOD_FILE} in bundles {unknown}; method bundles: {method_bundles()}.")
    changed = []
    for bundle in names:
        stale = outdated(bundle)
        changed += stale
        if not check:
            for path, text in render_bundle(bundle).items():
                full = os.path.join(BUNDLES_DIR, bundle, path)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "w", encoding="utf-8") as f:
                    f.write(text)
    if check and changed:
        print("out of date (run `python tools/generate_bundles.py`):\n  " + "\n  ".join(changed))
        sys.exit(1)
    print(("out of date: " if check else "written: ") + (", ".join(changed) or "nothing"))
    return changed


if __name__ == "__main__":
    fire.Fire(generate, serialize=lambda _: None)
