"""Real sample CT and MR volumes, prepared from the ``totalsegmentator`` source distribution.

The source distribution of ``totalsegmentator==2.18.0`` on PyPI (Apache 2.0) ships test reference
volumes: an abdomen-pelvis CT with a 30-slice crop of it, a chest CT angiogram, a 20-slice CT stored
as a JPEG-2000 DICOM series and an abdominal MR, plus label maps that TotalSegmentator's models made
for them. :func:`prepare_sample_data` downloads that archive once with pip, extracts only these
members, converts the DICOM series to NIfTI with ITK, puts every label map on its image's voxel grid,
and writes an MSD-style ``datalist.json`` whose paths are relative to its folder.

Subjects (verified by comparing voxels and affines, and by looking at the images):

* ``ts-ct-a``: ``example_ct`` (abdomen-pelvis, 3 mm) and ``example_ct_sm``, which equals slices
  82-111 of ``example_ct``; upstream kept the uncropped origin in the crop's header, which is corrected.
* ``ts-ct-b``: ``aorta_report/example_ct`` (CT angiogram from the upper abdomen to the neck, 1.5 mm);
  its aorta mask was made on a crop of this CT and is placed back on the full grid.
* ``ts-ct-c``: ``example_ct_dicom`` (upper abdomen, contrast-enhanced, 20 slices of 512x512).
* ``ts-mr-d``: ``example_mr_sm`` (abdominal MR, 3 mm).

Split: ``unlabeled`` = subjects a and b, ``validation`` = subject c (no subject shared with
``unlabeled``), ``unlabeled_mr`` = subject d. ``labeled``/``labeled_mr`` pair every image with its
model-made label map; those images are also used by the self-supervised lists (each entry's
``ssl_split`` says where).
"""

from __future__ import annotations

import ast
import email.parser
import hashlib
import logging
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath

import nibabel as nib
import numpy as np

from common.data.datalist import DATALIST_KEYS, atomic_output, read_datalist_json, write_datalist

logger = logging.getLogger(__name__)

PACKAGE = "totalsegmentator"
VERSION = "2.18.0"
#: SHA-256 of ``totalsegmentator-2.18.0.tar.gz`` as published on PyPI.
SDIST_SHA256 = "5d4223ef93973bc36d710869d11e7742ead2c154c72f7f9edcaaadd5b6c4bd03"
TOOL_VERSION = "1.0"
DATASET_NAME = "united-ssl-sample-ct"
DATALIST_NAME = "datalist.json"
ENV_VAR = "UNITED_SSL_DATA"
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

#: Output paths relative to the cache folder.
OUTPUTS: dict[str, str] = {
    "ct_a": "images/ct_abdomen_pelvis.nii.gz",
    "ct_a_crop": "images/ct_abdomen_pelvis_crop.nii.gz",
    "ct_b": "images/ct_chest_angio.nii.gz",
    "ct_c": "images/ct_upper_abdomen.nii.gz",
    "mr_d": "images/mr_abdomen.nii.gz",
    "seg_a": "labels/ct_abdomen_pelvis_total_fast.nii.gz",
    "seg_a_crop": "labels/ct_abdomen_pelvis_crop_total.nii.gz",
    "seg_b": "labels/ct_chest_angio_aorta.nii.gz",
    "seg_c": "labels/ct_upper_abdomen_total_fast.nii.gz",
    "seg_d": "labels/mr_abdomen_total_mr.nii.gz",
    "license": "LICENSE-totalsegmentator.txt",
}

SUBJECTS: dict[str, str] = {
    "ts-ct-a": "Abdomen-pelvis CT, 3 mm (example_ct); example_ct_sm is a 30-slice crop of the same volume.",
    "ts-ct-b": "CT angiogram from the upper abdomen to the neck, 1.5 mm (aorta_report/example_ct).",
    "ts-ct-c": "Contrast-enhanced upper-abdomen CT, 20 slices of 512x512, JPEG-2000 DICOM series (example_ct_dicom).",
    "ts-mr-d": "Abdominal MR, 3 mm (example_mr_sm); a different acquisition, relation to the CT subjects unknown.",
}


def repo_root() -> Path:
    """Returns the repository root: the parent of the ``common`` package folder."""
    return Path(__file__).resolve().parents[2]


def default_cache_dir() -> str:
    """Returns the sample data folder: ``$UNITED_SSL_DATA`` if set, else ``<repo root>/.cache/sample_data``."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return str(Path(env).expanduser())
    return str(repo_root() / ".cache" / "sample_data")


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


def dicom_series_to_nifti(folder: str | os.PathLike, out_path: str | os.PathLike) -> None:
    """Reads a DICOM series with ITK (GDCM) and writes it as NIfTI.

    Args:
        folder: a folder holding one DICOM series (file names need no extension).
        out_path: the ``.nii.gz`` to write.

    Raises:
        RuntimeError: if no series is found, or ITK cannot decode the pixels (for example a JPEG-2000
            series with an ITK build lacking the codec); the message names the transfer syntax.
    """
    import itk

    names = itk.GDCMSeriesFileNames.New()
    names.SetUseSeriesDetails(True)
    names.SetDirectory(str(folder))
    uids = list(names.GetSeriesUIDs())
    if not uids:
        raise RuntimeError(f"No DICOM series found in {folder}.")
    files = [str(f) for f in names.GetFileNames(uids[0])]
    if len(uids) > 1:
        logger.warning("%s holds %d DICOM series; converting the first (%d files).", folder, len(uids), len(files))
    syntax = transfer_syntax(files[0])
    try:
        image = itk.imread(files)
    except Exception as e:  # ITK raises plain RuntimeError subclasses from C++
        raise RuntimeError(
            f"ITK could not read the DICOM series in {folder} (transfer syntax {syntax}): {e}. "
            + ("ITK decodes JPEG 2000 through GDCM's OpenJPEG codec; this ITK build appears to lack it. "
               "Install an official `itk` wheel (which includes it) or convert the series elsewhere."
               if "JPEG 2000" in syntax else "")
        ) from e  # fmt: skip
    array = itk.array_view_from_image(image)
    if array.size == 0 or float(array.min()) == float(array.max()):
        raise RuntimeError(
            f"ITK decoded the DICOM series in {folder} (transfer syntax {syntax}) to a constant image; "
            f"the pixel data were probably not decoded."
        )
    with atomic_output(out_path) as tmp:
        itk.imwrite(image, str(tmp), compression=True)


_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.5": "RLE Lossless",
}


def transfer_syntax(path: str | os.PathLike) -> str:
    """Describes a DICOM file's transfer syntax, read from its file meta group (0002,0010).

    Args:
        path: a DICOM Part 10 file.

    Returns:
        The UID with its name when known, e.g. ``"1.2.840.10008.1.2.4.90 (JPEG 2000 Lossless)"``, or
        ``"unknown"`` if the file has no readable file meta header.
    """
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[128:132] != b"DICM":
        return "unknown"
    pos = 132
    while pos + 8 <= len(head):
        group, element = struct.unpack_from("<HH", head, pos)
        if group != 0x0002:
            break
        vr = head[pos + 4 : pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            (length,) = struct.unpack_from("<I", head, pos + 8)
            value = pos + 12
        else:
            (length,) = struct.unpack_from("<H", head, pos + 6)
            value = pos + 8
        if element == 0x0010:
            uid = head[value : value + length].rstrip(b"\x00 ").decode("ascii", errors="replace")
            return f"{uid} ({_TRANSFER_SYNTAXES[uid]})" if uid in _TRANSFER_SYNTAXES else uid
        pos = value + length
    return "unknown"


def _save_nifti(array: np.ndarray, affine: np.ndarray, dest: Path) -> None:
    """Writes a NIfTI file atomically with both qform and sform set to ``affine``."""
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    with atomic_output(dest) as tmp:
        nib.save(img, str(tmp))


def _copy_file(src: Path, dest: Path) -> None:
    """Copies a file atomically."""
    with atomic_output(dest) as tmp:
        shutil.copyfile(src, tmp)


def find_slab_offset(crop: np.ndarray, volume: np.ndarray) -> int | None:
    """Returns ``k`` such that ``crop == volume[..., k:k + crop.shape[2]]``, or None."""
    if crop.shape[:2] != volume.shape[:2] or crop.shape[2] > volume.shape[2]:
        return None
    for k in range(volume.shape[2] - crop.shape[2] + 1):
        if np.array_equal(crop[..., 0], volume[..., k]) and np.array_equal(crop, volume[..., k : k + crop.shape[2]]):
            return k
    return None


def label_on_image_grid(label: nib.Nifti1Image, shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """Returns a label map placed exactly (no interpolation) on an image's voxel grid.

    The label is first reoriented to the image's axis order and directions; its grid must then be
    the image grid or an integer-shifted crop of it, which is placed into a zero array.

    Args:
        label: the label map.
        shape: the image's spatial shape.
        affine: the image's voxel-to-world affine.

    Returns:
        The label values on the image grid (background 0 outside the label's extent).

    Raises:
        ValueError: if the grids differ by more than a reorientation and an integer shift, or the
            label reaches outside the image.
    """
    target = nib.orientations.io_orientation(affine)
    transform = nib.orientations.ornt_transform(nib.orientations.io_orientation(label.affine), target)
    label = label.as_reoriented(transform)
    mapping = np.linalg.inv(affine) @ label.affine
    shift = mapping[:3, 3]
    if not np.allclose(mapping[:3, :3], np.eye(3), atol=1e-3) or not np.allclose(shift, np.round(shift), atol=1e-2):
        raise ValueError(
            f"Label grid is not an integer-shifted crop of the image grid (voxel mapping {mapping.round(4).tolist()})."
        )
    start = np.round(shift).astype(int)
    data = np.asanyarray(label.dataobj)
    stop = start + np.array(data.shape[:3])
    if (start < 0).any() or (stop > np.array(shape[:3])).any():
        raise ValueError(f"Label extent {start.tolist()}..{stop.tolist()} lies outside the image shape {list(shape)}.")
    out = np.zeros(shape[:3], dtype=data.dtype)
    out[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]] = data
    return out


def _load(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Loads a NIfTI file and its voxels in the stored dtype."""
    img = nib.load(str(path))
    return img, np.asanyarray(img.dataobj)


def _build_volumes(files: dict[str, Path], cache: Path) -> dict[str, str]:
    """Writes every image and label into ``cache``; returns notes about corrections, keyed by output id."""
    notes: dict[str, str] = {}
    for key in ("ct_a", "ct_b", "mr_d", "seg_a", "seg_d", "license"):
        _copy_file(files[key], cache / OUTPUTS[key])

    ct_a, ct_a_data = _load(files["ct_a"])
    crop, crop_data = _load(files["ct_a_crop"])
    crop_affine = crop.affine
    k = find_slab_offset(crop_data, ct_a_data)
    if k is not None:
        expected = ct_a.affine @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, k], [0, 0, 0, 1]], dtype=float)
        if not np.allclose(crop.affine, expected, atol=1e-3):
            crop_affine = expected
            notes["ct_a_crop"] = (
                f"Equals slices {k}-{k + crop_data.shape[2] - 1} of example_ct; the upstream header kept the "
                f"uncropped origin, so the affine was corrected to match example_ct."
            )
    _save_nifti(crop_data, crop_affine, cache / OUTPUTS["ct_a_crop"])
    seg_crop, seg_crop_data = _load(files["seg_a_crop"])
    seg_crop_affine = crop_affine if np.allclose(seg_crop.affine, crop.affine, atol=1e-3) else seg_crop.affine
    _save_nifti(seg_crop_data, seg_crop_affine, cache / OUTPUTS["seg_a_crop"])
    if "ct_a_crop" in notes:
        notes["seg_a_crop"] = "Affine corrected together with its image (see the image's note)."

    ct_b = nib.load(str(files["ct_b"]))
    seg_b = nib.load(str(files["seg_b"]))
    _save_nifti(label_on_image_grid(seg_b, ct_b.shape, ct_b.affine), ct_b.affine, cache / OUTPUTS["seg_b"])
    notes["seg_b"] = (
        "The mask was made on a crop of this CT around the aorta and heart (test_result/models/ct_cropped); "
        "it is placed back on the full CT grid by its integer voxel offset (zeros outside the crop)."
    )

    dicom_series_to_nifti(files["dicom"], cache / OUTPUTS["ct_c"])
    ct_c = nib.load(str(cache / OUTPUTS["ct_c"]))
    seg_c = nib.load(str(files["seg_c"]))
    _save_nifti(label_on_image_grid(seg_c, ct_c.shape, ct_c.affine), ct_c.affine, cache / OUTPUTS["seg_c"])
    notes["ct_c"] = "JPEG-2000 DICOM series converted to NIfTI with ITK (GDCM)."
    notes["seg_c"] = "Upstream file has another axis orientation (dicom2nifti); reoriented onto the ITK-converted grid."
    return notes


def _source(license_name: str, member: str, note: str = "", label_member: str | None = None) -> dict[str, str]:
    src = {"package": PACKAGE, "version": VERSION, "license": license_name, "member": member, "note": note}
    if label_member is not None:
        src["label_member"] = label_member
    return src


def _count_structures(path: Path, num_classes: int) -> int:
    """Returns how many foreground label values a label map holds, checking they are below ``num_classes``."""
    values = np.unique(np.asanyarray(nib.load(str(path)).dataobj))
    values = values[values > 0]
    if values.size and int(values.max()) >= num_classes:
        raise RuntimeError(f"{path} holds label {int(values.max())}, beyond its {num_classes} classes.")
    return int(values.size)


def _build_datalist(
    cache: Path, license_name: str, class_maps: dict[str, dict[int, str]], notes: dict[str, str]
) -> dict:
    """Assembles the datalist dictionary for the files written by :func:`_build_volumes`."""
    total, total_mr = class_maps["total"], class_maps["total_mr"]
    label_sets = {
        "totalsegmentator_total": {"0": "background", **{str(k): v for k, v in sorted(total.items())}},
        "totalsegmentator_total_mr": {"0": "background", **{str(k): v for k, v in sorted(total_mr.items())}},
        "aorta": {"0": "background", "1": "aorta"},
    }
    dicom_member = DICOM_MEMBER + "/"

    def image_entry(key: str, member: str, subject: str) -> dict:
        return {"image": OUTPUTS[key], "subject": subject, "source": _source(license_name, member, notes.get(key, ""))}

    def labeled_entry(img: str, seg: str, img_member: str, subject: str, label_set: str, how: str, ssl: str) -> dict:
        n = max(int(v) for v in label_sets[label_set]) + 1
        present = _count_structures(cache / OUTPUTS[seg], n)
        known = len(label_sets[label_set]) - 1
        note = f"Model-made label map ({how}); not manually verified. {present} of {known} structures present."
        if notes.get(seg):
            note += " " + notes[seg]
        return {
            "image": OUTPUTS[img], "label": OUTPUTS[seg], "subject": subject, "ssl_split": ssl,
            "num_classes": n, "label_set": label_set, "label_note": note,
            "source": _source(license_name, img_member, notes.get(img, ""), label_member=MEMBERS.get(seg)),
        }  # fmt: skip

    return {
        "name": DATASET_NAME,
        "description": (
            f"Real CT and MR sample volumes from the source distribution of {PACKAGE}=={VERSION} (PyPI, "
            f"{license_name}), prepared by common.data.sample_data. 'unlabeled' (CT for pretraining) holds subjects "
            "ts-ct-a and ts-ct-b; 'validation' (CT for monitoring the self-supervised loss) holds ts-ct-c, which "
            "shares no subject or voxel with 'unlabeled'. example_ct_sm is a crop of example_ct, so it only appears "
            "in 'labeled', never in another split. 'labeled'/'labeled_mr' pair images with label maps made by "
            "TotalSegmentator's models (not manual annotations); their images are also used in the self-supervised "
            "lists (see each entry's 'ssl_split'), so a transfer test that must be unseen by pretraining should use "
            "the 'validation' subject ts-ct-c. Paths are relative to this file's folder."
        ),
        "tool_version": TOOL_VERSION,
        "modality": {"unlabeled": "CT", "validation": "CT", "unlabeled_mr": "MR", "labeled": "CT", "labeled_mr": "MR"},
        "sources": [
            {
                "package": PACKAGE, "version": VERSION, "license": license_name,
                "license_file": OUTPUTS["license"], "sha256": SDIST_SHA256,
                "retrieved_with": f"pip download --no-deps --no-binary :all: {PACKAGE}=={VERSION}",
                "note": "Images are the package's test reference volumes; all label maps were made by "
                "TotalSegmentator's models, not by annotators.",
            }
        ],  # fmt: skip
        "subjects": SUBJECTS,
        "label_sets": label_sets,
        "unlabeled": [
            image_entry("ct_a", MEMBERS["ct_a"], "ts-ct-a"),
            image_entry("ct_b", MEMBERS["ct_b"], "ts-ct-b"),
        ],
        "validation": [image_entry("ct_c", dicom_member, "ts-ct-c")],
        "unlabeled_mr": [image_entry("mr_d", MEMBERS["mr_d"], "ts-mr-d")],
        "labeled": [
            labeled_entry("ct_a", "seg_a", MEMBERS["ct_a"], "ts-ct-a", "totalsegmentator_total",
                          "TotalSegmentator 'total' task, fast 3 mm model, --force_split", "unlabeled"),
            labeled_entry("ct_a_crop", "seg_a_crop", MEMBERS["ct_a_crop"], "ts-ct-a", "totalsegmentator_total",
                          "TotalSegmentator 'total' task, 1.5 mm model, --body_seg", "unlabeled"),
            labeled_entry("ct_b", "seg_b", MEMBERS["ct_b"], "ts-ct-b", "aorta",
                          "aorta from TotalSegmentator's aorta-report pipeline, 'total' task", "unlabeled"),
            labeled_entry("ct_c", "seg_c", dicom_member, "ts-ct-c", "totalsegmentator_total",
                          "TotalSegmentator 'total' task, fast 3 mm model", "validation"),
        ],  # fmt: skip
        "labeled_mr": [
            labeled_entry("mr_d", "seg_d", MEMBERS["mr_d"], "ts-mr-d", "totalsegmentator_total_mr",
                          "TotalSegmentator 'total_mr' task", "unlabeled_mr"),
        ],  # fmt: skip
    }


def _check_grids(cache: Path, datalist: dict) -> None:
    """Checks that every label has its image's shape and affine (reads headers only)."""
    for key in ("labeled", "labeled_mr"):
        for entry in datalist[key]:
            img, lab = nib.load(str(cache / entry["image"])), nib.load(str(cache / entry["label"]))
            if img.shape[:3] != lab.shape[:3] or not np.allclose(img.affine, lab.affine, atol=1e-3):
                raise RuntimeError(
                    f"{entry['label']} is not on the grid of {entry['image']}: shapes {lab.shape} vs {img.shape}, "
                    f"affines {lab.affine.round(3).tolist()} vs {img.affine.round(3).tolist()}."
                )


def datalist_paths(datalist: dict) -> list[str]:
    """Returns every relative ``image``/``label`` path of a datalist, in order, without repeats."""
    paths: list[str] = []
    for key in DATALIST_KEYS:
        for entry in datalist.get(key) or []:
            for field in ("image", "label"):
                if isinstance(entry, dict) and isinstance(entry.get(field), str) and entry[field] not in paths:
                    paths.append(entry[field])
    return paths


def _cache_state(datalist_path: Path) -> str:
    """Returns ``"absent"``, ``"complete"``, ``"incomplete"`` (ours, outdated or missing files) or ``"foreign"``."""
    if not datalist_path.exists():
        return "absent"
    try:
        data = read_datalist_json(datalist_path)
    except ValueError:
        return "foreign"
    if data.get("name") != DATASET_NAME:
        return "foreign"
    if data.get("tool_version") != TOOL_VERSION:
        return "incomplete"
    paths = datalist_paths(data)
    if not paths or not all((datalist_path.parent / p).exists() for p in paths):
        return "incomplete"
    return "complete"


def prepare_sample_data(cache_dir: str | None = None, force: bool = False, sdist: str | None = None) -> str:
    """Prepares the real sample CT/MR data and its datalist; does nothing if they are already complete.

    Args:
        cache_dir: destination folder; default :func:`default_cache_dir` (``$UNITED_SSL_DATA`` or
            ``<repo root>/.cache/sample_data``).
        force: rebuild even if the datalist and all its files are present.
        sdist: an already-downloaded ``totalsegmentator-2.18.0.tar.gz`` to use instead of calling pip.

    Returns:
        The path of ``datalist.json``.

    Raises:
        RuntimeError: if the download fails (with the pip command, its error output and how to work
            offline), the archive does not match the pinned release, or a conversion fails.
        FileExistsError: if ``cache_dir`` holds a ``datalist.json`` that this tool did not write.
    """
    cache = Path(cache_dir).expanduser() if cache_dir else Path(default_cache_dir())
    datalist_path = cache / DATALIST_NAME
    state = _cache_state(datalist_path)
    if state == "foreign":
        raise FileExistsError(
            f"{datalist_path} exists but was not written by this tool (its name is not {DATASET_NAME!r}); "
            f"it is left untouched. Choose another --cache_dir or {ENV_VAR}."
        )
    if state == "complete" and not force:
        logger.info("Sample data already prepared in %s; nothing to do.", cache)
        return str(datalist_path)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="united-ssl-sample-") as work:
        archive = sdist if sdist else download_sdist(Path(work) / "download")
        verify_sdist(archive)
        files = extract_members(archive, Path(work) / "members")
        license_name = read_license(files["pkg_info"], files["license"])
        class_maps = read_class_maps(files["class_map"])
        cache.mkdir(parents=True, exist_ok=True)
        notes = _build_volumes(files, cache)
    datalist = _build_datalist(cache, license_name, class_maps, notes)
    _check_grids(cache, datalist)
    write_datalist(datalist, datalist_path)
    logger.info("Sample data prepared in %s in %.1f s.", cache, time.monotonic() - start)
    return str(datalist_path)


def summarize_datalist(datalist: str | os.PathLike) -> list[str]:
    """Describes every volume of a datalist in one line: path, shape, spacing, dtype and the lists using it.

    Args:
        datalist: path of the datalist JSON.

    Returns:
        One line per image or label file (headers are read, voxels are not).
    """
    path = Path(datalist)
    data = read_datalist_json(path)
    roles: dict[str, list[str]] = {}
    for key in DATALIST_KEYS:
        for entry in data.get(key) or []:
            roles.setdefault(entry["image"], []).append(key if "label" not in entry else f"{key}:image")
            if "label" in entry:
                roles.setdefault(entry["label"], []).append(f"{key}:label")
    width = max((len(p) for p in roles), default=0)
    labels_last = sorted(roles, key=lambda rel: all(role.endswith(":label") for role in roles[rel]))
    lines = []
    for rel in labels_last:
        used = roles[rel]
        img = nib.load(str(path.parent / rel))
        shape = "x".join(str(s) for s in img.shape)
        spacing = "x".join(f"{z:.3g}" for z in img.header.get_zooms()[:3])
        lines.append(f"{rel:<{width}}  {shape:>12}  {spacing:>16} mm  {str(img.get_data_dtype()):<7} {', '.join(used)}")
    return lines


__all__ = [
    "DATALIST_NAME",
    "ENV_VAR",
    "default_cache_dir",
    "download_sdist",
    "prepare_sample_data",
    "summarize_datalist",
]
