"""Test helper: write a DICOM CT series with ITK (a module of its own: ``from conftest import ...`` resolves to
whichever ``conftest`` pytest imported first when the whole suite runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_dicom_series"]


def write_dicom_series(folder: Path, volume_zyx: np.ndarray, spacing_xyz, origin_xyz) -> None:
    """Writes an uncompressed DICOM CT series with ITK, one extensionless file per slice."""
    import itk

    folder.mkdir(parents=True, exist_ok=True)
    image_2d = itk.Image[itk.SS, 2]
    study, series = "1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.12"
    for k in range(volume_zyx.shape[0]):
        sl = itk.image_from_array(np.ascontiguousarray(volume_zyx[k].astype(np.int16)))
        sl.SetSpacing([float(spacing_xyz[0]), float(spacing_xyz[1])])
        sl.SetOrigin([float(origin_xyz[0]), float(origin_xyz[1])])
        meta = itk.MetaDataDictionary()
        tags = {
            "0008|0060": "CT", "0008|0016": "1.2.840.10008.5.1.4.1.1.2", "0020|000d": study, "0020|000e": series,
            "0008|0018": f"1.2.826.0.1.3680043.8.498.13.{k + 1}", "0020|0013": str(k + 1),
            "0020|0032": f"{origin_xyz[0]}\\{origin_xyz[1]}\\{origin_xyz[2] + k * spacing_xyz[2]}",
            "0020|0037": "1\\0\\0\\0\\1\\0", "0018|0050": str(spacing_xyz[2]),
        }  # fmt: skip
        for tag, value in tags.items():
            meta[tag] = value
        sl.SetMetaDataDictionary(meta)
        imageio = itk.GDCMImageIO.New()
        imageio.KeepOriginalUIDOn()
        writer = itk.ImageFileWriter[image_2d].New(Input=sl, FileName=str(folder / f"CT.{k + 1:04d}"), ImageIO=imageio)
        writer.Update()
