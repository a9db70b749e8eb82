"""DICOM series to NIfTI with ITK (GDCM), and the transfer-syntax sniffing that explains decode failures.

ITK decodes compressed series (such as JPEG 2000) through GDCM's codecs; when a build lacks one, the
error names the series' transfer syntax, read here straight from the file meta group without a
DICOM library.
"""

from __future__ import annotations

import logging
import os
import struct

from common.data.atomic import atomic_output

logger = logging.getLogger(__name__)


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


__all__ = ["dicom_series_to_nifti", "transfer_syntax"]
