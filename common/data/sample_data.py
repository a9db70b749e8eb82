"""Real sample CT and MR volumes, prepared from the ``totalsegmentator`` source distribution.

The source distribution of ``totalsegmentator==2.18.0`` on PyPI (Apache 2.0) ships test reference
volumes: an abdomen-pelvis CT with a 30-slice crop of it, a chest CT angiogram, a 20-slice CT stored
as a JPEG-2000 DICOM series and an abdominal MR, plus label maps that TotalSegmentator's models made
for them. :func:`prepare_sample_data` downloads that archive once with pip, extracts only these
members, converts the DICOM series to NIfTI with ITK, puts every label map on its image's voxel grid,
and writes an MSD-style ``datalist.json`` whose paths are relative to its folder.

This module assembles the sample data and keeps the cache idempotent; the steps it uses live in
:mod:`common.data.sdist` (download, verification, extraction), :mod:`common.data.dicom` (DICOM to
NIfTI), :mod:`common.data.grid_alignment` (label maps on image grids), :mod:`common.data.nifti_io`
(atomic writes) and :mod:`common.data.cache_location` (where the cache is).

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

import logging
import os
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from common.data.cache_location import DATALIST_NAME, ENV_VAR, default_cache_dir
from common.data.datalist import DATALIST_KEYS, read_datalist_json, write_datalist
from common.data.dicom import dicom_series_to_nifti
from common.data.grid_alignment import check_label_grids, find_slab_offset, label_on_image_grid
from common.data.nifti_io import copy_file_atomic, load_nifti, save_nifti
from common.data.slices import SLICES_FOLDER, write_slice_dataset
from common.data.sdist import (
    DICOM_MEMBER,
    MEMBERS,
    PACKAGE,
    SDIST_SHA256,
    VERSION,
    download_sdist,
    extract_members,
    read_class_maps,
    read_license,
    verify_sdist,
)

logger = logging.getLogger(__name__)

TOOL_VERSION = "1.0"
DATASET_NAME = "united-ssl-sample-ct"

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


def _build_volumes(files: dict[str, Path], cache: Path) -> dict[str, str]:
    """Writes every image and label into ``cache``; returns notes about corrections, keyed by output id."""
    notes: dict[str, str] = {}
    for key in ("ct_a", "ct_b", "mr_d", "seg_a", "seg_d", "license"):
        copy_file_atomic(files[key], cache / OUTPUTS[key])

    ct_a, ct_a_data = load_nifti(files["ct_a"])
    crop, crop_data = load_nifti(files["ct_a_crop"])
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
    save_nifti(crop_data, crop_affine, cache / OUTPUTS["ct_a_crop"])
    seg_crop, seg_crop_data = load_nifti(files["seg_a_crop"])
    seg_crop_affine = crop_affine if np.allclose(seg_crop.affine, crop.affine, atol=1e-3) else seg_crop.affine
    save_nifti(seg_crop_data, seg_crop_affine, cache / OUTPUTS["seg_a_crop"])
    if "ct_a_crop" in notes:
        notes["seg_a_crop"] = "Affine corrected together with its image (see the image's note)."

    ct_b = nib.load(str(files["ct_b"]))
    seg_b = nib.load(str(files["seg_b"]))
    save_nifti(label_on_image_grid(seg_b, ct_b.shape, ct_b.affine), ct_b.affine, cache / OUTPUTS["seg_b"])
    notes["seg_b"] = (
        "The mask was made on a crop of this CT around the aorta and heart (test_result/models/ct_cropped); "
        "it is placed back on the full CT grid by its integer voxel offset (zeros outside the crop)."
    )

    dicom_series_to_nifti(files["dicom"], cache / OUTPUTS["ct_c"])
    ct_c = nib.load(str(cache / OUTPUTS["ct_c"]))
    seg_c = nib.load(str(files["seg_c"]))
    save_nifti(label_on_image_grid(seg_c, ct_c.shape, ct_c.affine), ct_c.affine, cache / OUTPUTS["seg_c"])
    notes["ct_c"] = "JPEG-2000 DICOM series converted to NIfTI with ITK (GDCM)."
    notes["seg_c"] = "Upstream file has another axis orientation (dicom2nifti); reoriented onto the ITK-converted grid."
    return notes


def _source(license_name: str, member: str, note: str = "", label_member: str | None = None) -> dict[str, str]:
    """Returns a datalist entry's ``source`` record: the archive member it came from, under its license."""
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
    check_label_grids(cache, datalist)
    write_datalist(datalist, datalist_path)
    logger.info("Sample data prepared in %s in %.1f s.", cache, time.monotonic() - start)
    return str(datalist_path)


def prepare_sample_slices(
    cache_dir: str | None = None,
    force: bool = False,
    sdist: str | None = None,
    gap_mm: float = 6.0,
    min_body_fraction: float = 0.15,
) -> str:
    """Prepares the sample volumes (if needed), then their axial 2D slices for 2D bundles (``bundles/dira_2d``).

    The slices go to ``<cache>/slices_2d/`` with their own ``datalist.json`` (same splits as the volumes);
    see :func:`common.data.slices.write_slice_dataset`. Both steps do nothing when already complete.

    Args:
        cache_dir: the sample data folder (default :func:`default_cache_dir`).
        force: rebuild the slices (not the volumes) even if complete.
        sdist: as for :func:`prepare_sample_data`.
        gap_mm: distance between two kept slices of a volume.
        min_body_fraction: slices with less body are skipped.

    Returns:
        The path of the 2D ``datalist.json``.
    """
    volumes = prepare_sample_data(cache_dir=cache_dir, sdist=sdist)
    out = Path(volumes).parent / SLICES_FOLDER
    return write_slice_dataset(volumes, out, gap_mm=gap_mm, min_body_fraction=min_body_fraction, force=force)


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
        spacing = "x".join(f"{z:.3g}" for z in img.header.get_zooms()[: min(3, len(img.shape))])
        lines.append(f"{rel:<{width}}  {shape:>12}  {spacing:>16} mm  {str(img.get_data_dtype()):<7} {', '.join(used)}")
    return lines


__all__ = [
    "DATALIST_NAME",
    "ENV_VAR",
    "default_cache_dir",
    "download_sdist",
    "prepare_sample_data",
    "prepare_sample_slices",
    "summarize_datalist",
]
