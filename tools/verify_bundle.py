"""The model zoo's checks of a bundle, offline, with the metadata schema vendored in ``tools/schema/``.

``python -m monai.bundle verify_metadata`` without ``--filepath`` fails offline (``KeyError: 'filepath'``) and the
zoo's CI downloads the schema first (``ci/prepare_schema.py``). This tool runs what the zoo's ``ci/verify_bundle.py``
runs, with the schema named by the metadata's ``"schema"`` URL taken from ``tools/schema/`` (its file name)::

    python tools/verify_bundle.py bundles/rotation --mode source     # a repository bundle (no weights)
    python tools/verify_bundle.py dist/rotation_ct_ssl                # min: what the zoo's CPU premerge checks
    python tools/verify_bundle.py dist/rotation_ct_ssl --mode full    # + network checks (the zoo's GPU CI)

- ``source``: ``configs/metadata.json``, ``LICENSE`` and ``configs/inference.*`` exist; ``version`` is a key of
  ``changelog`` and its newest entry (a version bump without a changelog entry fails); the metadata validates
  against the vendored schema; ``required_packages_version`` lists installed, installable distributions at their
  installed versions (not this repository, which a package carries in ``scripts/``).
- ``min``: also ``models/model.pt`` exists and every ``large_files.yml`` entry has a path, a url key and a matching md5.
- ``full``: also ``models/model.pt`` loads strictly into ``network_def`` of ``inference.yaml``,
  ``verify_net_in_out`` passes with the metadata's patch size, and ``ckpt_export`` writes TorchScript the way the
  metadata declares it (``united_ssl_package.torchscript`` or ``united_ssl.torchscript``: ``script``, or ``trace``
  with the patch size as input shape); the exported file is loaded again and must give the eager network's output.

It imports nothing from this repository, so it checks a package as a stranger's machine would. Exit status 1 lists
every problem.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import sys
import tempfile
from typing import Any

import fire

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema")
MODES = ("source", "min", "full")
OWN_PACKAGE = "common"

__all__ = [
    "MODES", "check_files", "check_version", "check_metadata", "check_packages", "check_large_files",
    "check_network", "torchscript_mode", "verify",
]  # fmt: skip


def _version_key(version: str) -> tuple[int, ...] | None:
    return tuple(int(p) for p in version.split(".")) if re.fullmatch(r"\d+(\.\d+)*", str(version)) else None


def _inference_config(bundle_dir: str) -> str | None:
    for name in ("inference.json", "inference.yaml", "inference.yml"):
        path = os.path.join(bundle_dir, "configs", name)
        if os.path.isfile(path):
            return path
    return None


def check_files(bundle_dir: str, mode: str) -> list[str]:
    """The zoo's necessary files, plus its preferred ones (``models/model.pt`` outside ``source`` mode)."""
    problems = [f"missing {p}" for p in ("configs/metadata.json", "LICENSE") if not os.path.isfile(os.path.join(bundle_dir, p))]
    if _inference_config(bundle_dir) is None:
        problems.append("missing configs/inference.json|yaml|yml")
    if mode != "source" and not os.path.isfile(os.path.join(bundle_dir, "models", "model.pt")):
        problems.append("missing models/model.pt (the zoo: 'necessary file models/model.pt is not existing')")
    return problems


def check_version(metadata: dict[str, Any]) -> list[str]:
    """``version`` is a key of ``changelog`` and the newest one (every release says what changed)."""
    version, changelog = metadata.get("version"), metadata.get("changelog")
    if not version or not isinstance(changelog, dict) or not changelog:
        return ["metadata needs `version` and a non-empty `changelog`"]
    if version not in changelog:
        return [f"version {version} has no changelog entry (changelog: {sorted(changelog)})"]
    keys = {k: _version_key(k) for k in changelog}
    bad = [k for k, v in keys.items() if v is None]
    if bad:
        return [f"changelog keys {bad} are not versions like 0.2.0"]
    newest = max(keys, key=keys.get)
    return [] if newest == version else [f"version {version} is not the newest changelog entry ({newest})"]


def schema_file(metadata: dict[str, Any], schema_dir: str = SCHEMA_DIR) -> str:
    """The vendored copy of the schema the metadata names (by file name)."""
    url = metadata.get("schema", "")
    path = os.path.join(schema_dir, os.path.basename(url))
    if not url or not os.path.isfile(path):
        raise FileNotFoundError(f"schema {url!r} is not vendored in {schema_dir} (files: {sorted(os.listdir(schema_dir))}).")
    return path


def check_metadata(meta_file: str, schema_dir: str = SCHEMA_DIR) -> list[str]:
    """``monai.bundle.verify_metadata`` against the vendored schema (no download)."""
    from monai.bundle import verify_metadata

    metadata = json.load(open(meta_file, encoding="utf-8"))
    try:
        verify_metadata(meta_file=meta_file, filepath=schema_file(metadata, schema_dir))
    except Exception as e:  # jsonschema's ValidationError, a missing schema
        return [f"metadata does not validate: {str(e).splitlines()[0]}"]
    return []


def check_packages(metadata: dict[str, Any], own_package: str = OWN_PACKAGE) -> list[str]:
    """Every ``required_packages_version`` entry is an installed distribution at that version, not this repository."""
    own = {d.lower() for d in importlib.metadata.packages_distributions().get(own_package, [])}
    problems = []
    for name, version in (metadata.get("required_packages_version") or {}).items():
        if name.lower() in own:
            problems.append(f"required_packages_version lists {name}, this repository, which no package index has")
            continue
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"required_packages_version lists {name}, which is not installed here")
            continue
        if installed != str(version):
            problems.append(f"required_packages_version pins {name}=={version}, installed: {installed}")
    return problems


def check_large_files(bundle_dir: str) -> list[str]:
    """``large_files.yml`` entries: path, url key, md5 of the file when it is present."""
    import hashlib

    import yaml

    path = os.path.join(bundle_dir, "large_files.yml")
    if not os.path.isfile(path):
        return ["missing large_files.yml (weights are listed there, not committed)"]
    problems = []
    for entry in (yaml.safe_load(open(path, encoding="utf-8")) or {}).get("large_files", []):
        if "path" not in entry or "url" not in entry:
            problems.append(f"large_files.yml entry {entry} needs `path` and `url`")
            continue
        file = os.path.join(bundle_dir, entry["path"])
        if os.path.isfile(file) and entry.get("hash_val"):
            digest = hashlib.new(entry.get("hash_type", "md5"), open(file, "rb").read()).hexdigest()
            if digest != entry["hash_val"]:
                problems.append(f"{entry['path']}: {entry.get('hash_type', 'md5')} {digest} != large_files.yml {entry['hash_val']}")
        elif not os.path.isfile(file) and not entry["url"]:
            problems.append(f"{entry['path']} is neither present nor downloadable (empty url)")
    return problems


def torchscript_mode(metadata: dict[str, Any]) -> str:
    """How the bundle's network is exported: the package's declaration, else the method bundle's.

    Raises:
        KeyError: the metadata declares neither, or something other than ``script``/``trace``.
    """
    mode = (metadata.get("united_ssl_package") or {}).get("torchscript") or (metadata.get("united_ssl") or {}).get("torchscript")
    if mode not in ("script", "trace"):
        raise KeyError(f"metadata declares torchscript {mode!r}; expected 'script' or 'trace' (united_ssl_package or united_ssl).")
    return mode


def _patch(metadata: dict[str, Any]) -> tuple[int, list[int], int]:
    """(channels, patch size, n) of the first input: n makes the metadata's ``"k*n"`` shape the patch size."""
    image = next(iter(metadata["network_data_format"]["inputs"].values()))
    shape = image["spatial_shape"]
    patch = list(image.get("patch_size") or [])
    n = 1
    match = re.fullmatch(r"(\d+)\*n", str(shape[0])) if shape else None
    if match and patch:
        n = max(1, patch[0] // int(match.group(1)))
    if not patch:
        patch = [int(m.group(1)) * n if (m := re.fullmatch(r"(\d+)\*n", str(s))) else int(s) for s in shape]
    return int(image["num_channels"]), patch, n


def check_network(bundle_dir: str) -> list[str]:
    """Strict load of ``models/model.pt``, ``verify_net_in_out``, ``ckpt_export`` in the declared mode, reload."""
    import torch
    from monai.bundle import ConfigParser, ckpt_export, verify_net_in_out

    meta_file = os.path.join(bundle_dir, "configs", "metadata.json")
    metadata = json.load(open(meta_file, encoding="utf-8"))
    config = _inference_config(bundle_dir)
    model = os.path.join(bundle_dir, "models", "model.pt")
    args = {"meta_file": meta_file, "config_file": config, "bundle_root": bundle_dir}
    problems = []
    parser = ConfigParser()
    parser.read_config(config)
    parser["bundle_root"] = bundle_dir
    network = parser.get_parsed_content("network_def").eval()
    try:
        network.load_state_dict(torch.load(model, map_location="cpu", weights_only=True), strict=True)
    except Exception as e:
        return [f"models/model.pt does not load strictly into network_def of {os.path.basename(config)}: {str(e)[:500]}"]
    channels, patch, n = _patch(metadata)
    try:
        verify_net_in_out(net_id="network_def", n=n, **args)
    except Exception as e:
        problems.append(f"verify_net_in_out failed: {str(e)[:500]}")
    mode = torchscript_mode(metadata)
    with tempfile.TemporaryDirectory() as tmp:
        ts_file = os.path.join(tmp, "model.ts")
        try:
            ckpt_export(net_id="network_def", filepath=ts_file, ckpt_file=model, use_trace=mode == "trace",
                        input_shape=[1, channels, *patch], **args)  # fmt: skip
            exported = torch.jit.load(ts_file)
            x = torch.rand(1, channels, *patch)
            with torch.no_grad():
                expected, got = network(x), exported(x)
            if not torch.allclose(expected, got, atol=1e-4, rtol=1e-4):
                problems.append(f"the exported TorchScript ({mode}) differs from the network: max |diff| {(expected - got).abs().max():.3g}")
        except Exception as e:
            problems.append(f"ckpt_export ({mode}) or reloading it failed: {str(e)[:500]}")
    return problems


def verify(bundle_dir: str, mode: str = "min", schema_dir: str = SCHEMA_DIR) -> list[str]:
    """Every problem the checks of ``mode`` find (see the module docstring); ``[]`` when the bundle passes."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    bundle_dir = os.path.abspath(bundle_dir)
    problems = check_files(bundle_dir, mode)
    meta_file = os.path.join(bundle_dir, "configs", "metadata.json")
    if not os.path.isfile(meta_file):
        return problems
    metadata = json.load(open(meta_file, encoding="utf-8"))
    problems += check_version(metadata) + check_metadata(meta_file, schema_dir) + check_packages(metadata)
    if mode != "source":
        problems += check_large_files(bundle_dir)
    if mode == "full" and not problems:
        problems += check_network(bundle_dir)
    return problems


def main(bundle_dir: str, mode: str = "min", schema_dir: str = SCHEMA_DIR) -> None:
    problems = verify(bundle_dir, mode, schema_dir)
    for problem in problems:
        print(f"FAIL {bundle_dir}: {problem}")
    if problems:
        sys.exit(1)
    print(f"ok {bundle_dir}: {mode} checks passed")


if __name__ == "__main__":
    fire.Fire(main)
