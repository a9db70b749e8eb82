"""The pinned ``totalsegmentator==2.18.0`` source distribution: download, verification and safe extraction.

The archive is fetched once with ``pip download`` and checked against its published SHA-256. Only
the members this project uses are extracted, at paths built from this module's own names, so that a
crafted archive cannot write elsewhere. Its license name and label names are read from the extracted
metadata without running any of its code.
"""

from __future__ import annotations

import ast
import email.parser
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath

from common.data.cache_location import DATALIST_NAME, ENV_VAR

logger = logging.getLogger(__name__)

PACKAGE = "totalsegmentator"
VERSION = "2.18.0"
#: SHA-256 of ``totalsegmentator-2.18.0.tar.gz`` as published on PyPI.
SDIST_SHA256 = "5d4223ef93973bc36d710869d11e7742ead2c154c72f7f9edcaaadd5b6c4bd03"
PIP_TIMEOUT_S = 1800

_REF = "tests/reference_files/"
#: Single-file members used, keyed by a short id, relative to the archive's top folder.
MEMBERS: dict[str, str] = {
    "pkg_info": "PKG-INFO",
    "license": "LICENSE",
    "class_map": "totalsegmentator/map_to_binary.py",
    "ct_a": _REF + "example_ct.nii.gz",
    "ct_a_crop": _REF + "example_ct_sm.nii.gz",
    "seg_a": _REF + "example_seg_fast_force_split.nii.gz",
    "seg_a_crop": _REF + "example_seg.nii.gz",
    "ct_b": _REF + "aorta_report/example_ct.nii.gz",
    "seg_b": _REF + "aorta_report/test_result/models/aorta.nii.gz",
    "seg_c": _REF + "example_seg_dicom.nii.gz",
    "mr_d": _REF + "example_mr_sm.nii.gz",
    "seg_d": _REF + "example_seg_mr.nii.gz",
}
#: Folder member holding the DICOM series (subject c).
DICOM_MEMBER = _REF + "example_ct_dicom"


def _offline_hint() -> str:
    """Explains how to use the sample data without access to PyPI."""
    return (
        f"Without access to PyPI, copy a folder prepared on another machine (the one holding {DATALIST_NAME}) "
        f"and point {ENV_VAR}=/path/to/it or `--cache_dir /path/to/it` at it; or fetch the archive elsewhere with "
        f"`pip download --no-deps --no-binary :all: {PACKAGE}=={VERSION}` and pass it as "
        f"`--sdist /path/to/{PACKAGE}-{VERSION}.tar.gz`."
    )


def pip_download_command(dest_dir: str | os.PathLike) -> list[str]:
    """Returns the pip command that downloads the pinned source distribution into ``dest_dir``."""
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        f"{PACKAGE}=={VERSION}", "-d", str(dest_dir),
    ]  # fmt: skip


def download_sdist(dest_dir: str | os.PathLike) -> str:
    """Downloads ``totalsegmentator==2.18.0``'s source distribution with pip.

    Args:
        dest_dir: folder to download into.

    Returns:
        The path of the downloaded ``.tar.gz``.

    Raises:
        RuntimeError: if pip fails or times out (the message names the command and the end of its
            error output, and how to use a copy prepared elsewhere).
    """
    cmd = pip_download_command(dest_dir)
    shown = " ".join(cmd)
    logger.info("Downloading the sample data archive: %s", shown)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"`{shown}` did not finish within {PIP_TIMEOUT_S} s. {_offline_hint()}") from e
    except OSError as e:
        raise RuntimeError(f"Could not run `{shown}`: {e}. {_offline_hint()}") from e
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-15:])
        raise RuntimeError(
            f"Downloading the sample CT data failed: `{shown}` exited with code {proc.returncode}.\n"
            f"--- end of pip's error output ---\n{tail}\n---\n{_offline_hint()}"
        )
    found = sorted(Path(dest_dir).glob(f"{PACKAGE}-{VERSION}.tar.gz")) or sorted(Path(dest_dir).glob("*.tar.gz"))
    if len(found) != 1:
        raise RuntimeError(f"`{shown}` succeeded but left {len(found)} .tar.gz files in {dest_dir}, expected 1.")
    return str(found[0])


def verify_sdist(path: str | os.PathLike) -> None:
    """Checks the archive's SHA-256 against :data:`SDIST_SHA256`.

    Raises:
        RuntimeError: on a mismatch.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != SDIST_SHA256:
        raise RuntimeError(
            f"{path} has SHA-256 {digest.hexdigest()}, expected {SDIST_SHA256} for {PACKAGE}=={VERSION}; "
            f"the file is corrupt or not the pinned release."
        )


def _safe_relpath(name: str, top: str) -> str | None:
    """Returns a member's path below the archive's top folder, or None if it lies outside it.

    Raises:
        RuntimeError: if the name is absolute or contains ``..`` (a tampered archive).
    """
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        raise RuntimeError(f"Refusing unsafe member path {name!r} in the sample data archive.")
    if len(path.parts) < 2 or path.parts[0] != top:
        return None
    return PurePosixPath(*path.parts[1:]).as_posix()


def extract_members(sdist: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Extracts the members listed in :data:`MEMBERS` and the DICOM folder into ``out_dir``.

    Only regular files are written, at paths built from this module's own names (DICOM slices keep
    their base name only), so a crafted archive cannot write outside ``out_dir``.

    Args:
        sdist: the ``.tar.gz`` source distribution.
        out_dir: an empty scratch folder.

    Returns:
        Paths keyed like :data:`MEMBERS`, plus ``"dicom"`` for the folder of DICOM slices.

    Raises:
        RuntimeError: if a member is missing, is not a regular file, or has an unsafe path.
    """
    out = Path(out_dir)
    wanted = {member: key for key, member in MEMBERS.items()}
    found: dict[str, Path] = {}
    dicom_dir = out / "dicom"
    dicom_files = 0
    top = f"{PACKAGE}-{VERSION}"
    with tarfile.open(sdist, mode="r:gz") as tar:
        for info in tar:
            rel = _safe_relpath(info.name, top)
            if rel is None:
                continue
            in_dicom = rel.startswith(DICOM_MEMBER + "/")
            if rel not in wanted and not in_dicom:
                continue
            if not info.isfile():
                if in_dicom and info.isdir():
                    continue
                raise RuntimeError(f"Member {info.name!r} of {sdist} is not a regular file; refusing to extract it.")
            if in_dicom:
                base = PurePosixPath(rel).name
                if base.startswith("."):
                    continue
                dest = dicom_dir / base
                dicom_files += 1
            else:
                dest = out / wanted[rel] / PurePosixPath(rel).name
                found[wanted[rel]] = dest
            dest.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(info)
            if src is None:
                raise RuntimeError(f"Cannot read member {info.name!r} of {sdist}.")
            with src, open(dest, "wb") as f:
                shutil.copyfileobj(src, f)
    missing = [MEMBERS[k] for k in MEMBERS if k not in found] + ([DICOM_MEMBER + "/"] if not dicom_files else [])
    if missing:
        raise RuntimeError(f"The sample data archive {sdist} lacks the members {missing}.")
    found["dicom"] = dicom_dir
    return found


def read_license(pkg_info: Path, license_file: Path) -> str:
    """Returns the license name from ``PKG-INFO`` (``License`` field), else the ``LICENSE`` file's title."""
    meta = email.parser.Parser().parsestr(pkg_info.read_text(encoding="utf-8", errors="replace"))
    name = (meta.get("License") or meta.get("License-Expression") or "").strip()
    if name and name.upper() != "UNKNOWN":
        return name
    lines = [ln.strip() for ln in license_file.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError(f"Cannot tell the license: no License field in {pkg_info} and {license_file} is empty.")
    return " ".join(lines[:2])


def read_class_maps(path: Path, names: tuple[str, ...] = ("total", "total_mr")) -> dict[str, dict[int, str]]:
    """Reads label names from TotalSegmentator's ``map_to_binary.py`` without importing it.

    The module's ``class_map`` literal is parsed with :func:`ast.literal_eval` (no code is run).

    Args:
        path: the extracted ``map_to_binary.py``.
        names: the class maps to return.

    Returns:
        ``{map_name: {label_value: structure_name}}``.

    Raises:
        RuntimeError: if ``class_map`` or one of ``names`` is absent.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "class_map" for t in node.targets):
            class_map = ast.literal_eval(node.value)
            break
    else:
        raise RuntimeError(f"No literal `class_map` found in {path}.")
    missing = [n for n in names if n not in class_map]
    if missing:
        raise RuntimeError(f"{path}: class maps {missing} not found (have {sorted(class_map)}).")
    return {n: {int(k): str(v) for k, v in class_map[n].items()} for n in names}


__all__ = [
    "DICOM_MEMBER",
    "MEMBERS",
    "PACKAGE",
    "SDIST_SHA256",
    "VERSION",
    "download_sdist",
    "extract_members",
    "pip_download_command",
    "read_class_maps",
    "read_license",
    "verify_sdist",
]
