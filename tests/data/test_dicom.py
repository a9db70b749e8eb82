"""Tests of common.data.dicom: transfer-syntax sniffing and the error of a series ITK cannot decode."""

from __future__ import annotations

import pytest

from common.data import dicom, sdist

# importing ITK's SWIG bindings emits these on Python 3.11+
pytestmark = pytest.mark.filterwarnings("ignore:builtin type [Ss]wig:DeprecationWarning")


def test_dicom_read_error_names_transfer_syntax(fake_sdist, monkeypatch, tmp_path):
    import itk

    files = sdist.extract_members(fake_sdist.path, tmp_path / "members")
    first = sorted(files["dicom"].iterdir())[0]
    assert "Little Endian" in dicom.transfer_syntax(first)

    def fail(*args, **kwargs):
        raise RuntimeError("itk::ERROR: GDCMImageIO: cannot decode")

    monkeypatch.setattr(itk, "imread", fail)
    monkeypatch.setattr(dicom, "transfer_syntax", lambda path: "1.2.840.10008.1.2.4.90 (JPEG 2000 Lossless)")
    with pytest.raises(RuntimeError, match="JPEG 2000") as info:
        dicom.dicom_series_to_nifti(files["dicom"], tmp_path / "ct.nii.gz")
    assert str(files["dicom"]) in str(info.value) and "OpenJPEG" in str(info.value)
    assert not (tmp_path / "ct.nii.gz").exists()


def test_transfer_syntax_of_a_non_dicom_file_is_unknown(tmp_path):
    path = tmp_path / "not_dicom"
    path.write_bytes(b"\0" * 200)
    assert dicom.transfer_syntax(path) == "unknown"
