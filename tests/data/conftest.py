"""Fixtures for the data tests: a small fake ``totalsegmentator`` source distribution and a fake pip.

The fake archive has the same member layout as the real one and reproduces its quirks (a crop whose
header keeps the uncropped origin, a mask made on a crop of its CT, a label map of the DICOM series
written in another axis orientation), with tiny volumes so a full preparation takes well under a
second once ITK is imported.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from common.data import sample_data, sdist
from dicom_series_writer import write_dicom_series  # noqa: F401  (used by the fake sdist)

TOP = f"{sdist.PACKAGE}-{sdist.VERSION}"
REF = "tests/reference_files/"
FAKE_LICENSE = "Fake-License 1.0"

CLASS_MAP_SOURCE = '''
class_map = {
    "total_v1": {1: "spleen"},
    "total": {1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 5: "liver", 6: "aorta"},
    "total_mr": {1: "spleen", 2: "liver", 3: "aorta"},
}
'''


@dataclass
class FakeSdist:
    """A fake source distribution and the arrays it holds, for checking the prepared outputs."""

    path: Path
    sha256: str
    license: str = FAKE_LICENSE
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    affines: dict[str, np.ndarray] = field(default_factory=dict)


def _nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    """Returns a gzipped NIfTI file's bytes (sform code 2, qform unset, as in the upstream files)."""
    img = nib.Nifti1Image(array, affine)
    img.set_sform(affine, code=2)
    return gzip.compress(img.to_bytes(), compresslevel=1)


def _shift(affine: np.ndarray, offset: tuple[int, int, int]) -> np.ndarray:
    """Returns the affine of a crop starting at voxel ``offset``."""
    return affine @ np.array(
        [[1, 0, 0, offset[0]], [0, 1, 0, offset[1]], [0, 0, 1, offset[2]], [0, 0, 0, 1]], dtype=float
    )


def build_fake_sdist(dest: Path) -> FakeSdist:
    """Builds a small ``.tar.gz`` at ``dest`` with the real archive's member layout."""
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    affines: dict[str, np.ndarray] = {}
    members: dict[str, bytes] = {
        "PKG-INFO": f"Metadata-Version: 2.4\nName: TotalSegmentator\nLicense: {FAKE_LICENSE}\n".encode(),
        "LICENSE": b"Fake License\nVersion 1.0\n",
        "totalsegmentator/map_to_binary.py": CLASS_MAP_SOURCE.encode(),
        "README.md": b"not extracted\n",
    }

    # subject a: CT, its labels, and a crop whose header keeps the uncropped origin (as upstream)
    ras3 = np.array([[3.0, 0, 0, -30.0], [0, 3.0, 0, 10.0], [0, 0, 3.0, 90.0], [0, 0, 0, 1]])
    ct_a = rng.integers(-1000, 1500, (16, 14, 12)).astype(np.int16)
    seg_a = rng.choice(np.array([0, 1, 5], dtype=np.uint8), size=ct_a.shape)
    arrays.update(ct_a=ct_a, seg_a=seg_a, ct_a_crop=ct_a[..., 6:], seg_a_crop=seg_a[..., 6:])
    affines.update(ct_a=ras3, ct_a_crop_fixed=_shift(ras3, (0, 0, 6)))
    members[REF + "example_ct.nii.gz"] = _nifti_bytes(ct_a, ras3)
    members[REF + "example_seg_fast_force_split.nii.gz"] = _nifti_bytes(seg_a, ras3)
    members[REF + "example_ct_sm.nii.gz"] = _nifti_bytes(np.ascontiguousarray(ct_a[..., 6:]), ras3)
    members[REF + "example_seg.nii.gz"] = _nifti_bytes(np.ascontiguousarray(seg_a[..., 6:]), ras3)

    # subject b: LPS CT and an aorta mask on a crop of it at voxel offset (3, 2, 0)
    lps = np.array([[-1.5, 0, 0, 40.0], [0, -1.5, 0, 60.0], [0, 0, 1.5, 500.0], [0, 0, 0, 1]])
    ct_b = rng.integers(-1000, 1500, (20, 18, 16)).astype(np.int16)
    seg_b_crop = (rng.random((10, 9, 8)) > 0.5).astype(np.uint8)
    arrays.update(ct_b=ct_b, seg_b_crop=seg_b_crop)
    affines.update(ct_b=lps)
    members[REF + "aorta_report/example_ct.nii.gz"] = _nifti_bytes(ct_b, lps)
    members[REF + "aorta_report/test_result/models/aorta.nii.gz"] = _nifti_bytes(seg_b_crop, _shift(lps, (3, 2, 0)))

    # subject c: a 4-slice DICOM series; its label is written flipped along y (LAS), as dicom2nifti did
    spacing, origin = (0.8, 0.75, 2.0), (-20.0, -30.0, -100.0)
    ct_c_zyx = rng.integers(-1000, 1500, (4, 12, 10)).astype(np.int16)
    ct_c = np.transpose(ct_c_zyx, (2, 1, 0))  # x, y, z like the NIfTI written by ITK
    seg_c = (ct_c > 500).astype(np.uint8) * 5
    itk_affine = np.array(
        [[-spacing[0], 0, 0, -origin[0]], [0, -spacing[1], 0, -origin[1]], [0, 0, spacing[2], origin[2]], [0, 0, 0, 1]]
    )
    las_affine = itk_affine.copy()
    las_affine[:3, 1] *= -1
    las_affine[:3, 3] = itk_affine[:3, 3] + itk_affine[:3, 1] * (ct_c.shape[1] - 1)
    arrays.update(ct_c=ct_c, seg_c=seg_c)
    affines.update(ct_c=itk_affine)
    members[REF + "example_seg_dicom.nii.gz"] = _nifti_bytes(np.ascontiguousarray(seg_c[:, ::-1, :]), las_affine)
    dicom_dir = dest.parent / f"{dest.name}-dicom"
    write_dicom_series(dicom_dir, ct_c_zyx, spacing, origin)
    for f in sorted(dicom_dir.iterdir()):
        members[REF + "example_ct_dicom/" + f.name] = f.read_bytes()
    shutil.rmtree(dicom_dir)

    # subject d: MR and its labels
    mr = rng.integers(0, 800, (10, 9, 5)).astype(np.int16)
    seg_d = rng.choice(np.array([0, 2, 3], dtype=np.uint8), size=mr.shape)
    arrays.update(mr_d=mr, seg_d=seg_d)
    members[REF + "example_mr_sm.nii.gz"] = _nifti_bytes(mr, lps)
    members[REF + "example_seg_mr.nii.gz"] = _nifti_bytes(seg_d, lps)

    with tarfile.open(dest, "w:gz", compresslevel=1) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256(dest.read_bytes()).hexdigest()
    return FakeSdist(path=dest, sha256=digest, arrays=arrays, affines=affines)


@pytest.fixture(scope="session")
def fake_sdist(tmp_path_factory) -> FakeSdist:
    """A fake ``totalsegmentator-2.18.0.tar.gz`` built once per session."""
    folder = tmp_path_factory.mktemp("fake_sdist")
    return build_fake_sdist(folder / f"{TOP}.tar.gz")


@pytest.fixture
def fake_pip(monkeypatch, fake_sdist) -> list[str]:
    """Replaces the pip download by a copy of the fake archive and pins its checksum; returns the download calls."""
    calls: list[str] = []

    def download(dest_dir) -> str:
        calls.append(str(dest_dir))
        Path(dest_dir).mkdir(parents=True, exist_ok=True)
        return shutil.copy(fake_sdist.path, Path(dest_dir) / fake_sdist.path.name)

    monkeypatch.setattr(sample_data, "download_sdist", download)
    monkeypatch.setattr(sdist, "SDIST_SHA256", fake_sdist.sha256)
    return calls


@pytest.fixture(autouse=True)
def _stats_cache_in_tmp(tmp_path_factory, monkeypatch) -> Path:
    """Keeps the data check's statistics cache out of the user's home folder during the tests."""
    folder = tmp_path_factory.mktemp("volume_stats")
    from common.data.stats_cache import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder
