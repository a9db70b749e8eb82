"""Tests of common.data.sdist: the pinned pip command, checksum, safe extraction and metadata reading."""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile

import pytest

from common.data import sdist

TOP = f"{sdist.PACKAGE}-{sdist.VERSION}"
# importing ITK's SWIG bindings (for the fake archive's DICOM series) emits these on Python 3.11+
pytestmark = pytest.mark.filterwarnings("ignore:builtin type [Ss]wig:DeprecationWarning")


def test_pip_command_is_pinned_source_download(tmp_path):
    cmd = sdist.pip_download_command(tmp_path)
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and ":all:" in cmd and "totalsegmentator==2.18.0" in cmd and str(tmp_path) in cmd


def test_verify_sdist_accepts_pinned_digest_only(monkeypatch, tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"archive bytes")
    with pytest.raises(RuntimeError, match="SHA-256") as info:
        sdist.verify_sdist(archive)
    assert hashlib.sha256(b"archive bytes").hexdigest() in str(info.value) and sdist.SDIST_SHA256 in str(info.value)
    monkeypatch.setattr(sdist, "SDIST_SHA256", hashlib.sha256(b"archive bytes").hexdigest())
    sdist.verify_sdist(archive)


@pytest.mark.parametrize("name", [f"{TOP}/tests/reference_files/example_ct_dicom/../../../../evil.txt", "/evil.txt"])
def test_unsafe_member_paths_are_refused(monkeypatch, tmp_path, name):
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(RuntimeError, match="unsafe member"):
        sdist.extract_members(archive, tmp_path / "out")
    assert not list(tmp_path.rglob("evil.txt"))


def test_symlinked_member_is_refused(fake_sdist, tmp_path):
    link = tarfile.TarInfo(f"{TOP}/tests/reference_files/example_ct_dicom/CT.0001")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with tarfile.open(fake_sdist.path, "r:gz") as src, tarfile.open(tmp_path / "bad.tar.gz", "w:gz") as dst:
        for member in src:
            if member.name == link.name:
                dst.addfile(link)
            else:
                dst.addfile(member, src.extractfile(member))
    with pytest.raises(RuntimeError, match="not a regular file"):
        sdist.extract_members(tmp_path / "bad.tar.gz", tmp_path / "out")


def test_missing_members_are_named(tmp_path):
    archive = tmp_path / "empty.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(f"{TOP}/README.md")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(RuntimeError, match="example_ct.nii.gz"):
        sdist.extract_members(archive, tmp_path / "out")


def test_extracts_only_listed_members_and_reads_metadata(fake_sdist, tmp_path):
    files = sdist.extract_members(fake_sdist.path, tmp_path / "out")
    assert set(files) == {*sdist.MEMBERS, "dicom"}
    assert all(p.is_file() for key, p in files.items() if key != "dicom") and any(files["dicom"].iterdir())
    assert not list(tmp_path.rglob("README.md"))
    assert sdist.read_license(files["pkg_info"], files["license"]) == fake_sdist.license
    maps = sdist.read_class_maps(files["class_map"])
    assert set(maps) == {"total", "total_mr"} and maps["total"][5] == "liver" and maps["total_mr"][3] == "aorta"
    with pytest.raises(RuntimeError, match="not_a_map"):
        sdist.read_class_maps(files["class_map"], names=("total", "not_a_map"))
