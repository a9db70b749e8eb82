"""Data: datalists, folder scans, the data check, intensity presets, the real sample data and a test phantom."""

from common.data.check import DataCheckReport, Problem, check_data
from common.data.datalist import (
    AUTO,
    datalist_from_folder,
    datalist_preset,
    load_datalist,
    resolve_training_data,
    write_datalist,
)
from common.data.errors import DataCheckFailed, DataError
from common.data.phantom import make_ct_phantom, write_phantom_dataset
from common.data.presets import PRESETS, foreground_threshold, intensity_preset, restoration_activation
from common.data.sample_data import default_cache_dir, prepare_sample_data

__all__ = [
    "AUTO",
    "PRESETS",
    "DataCheckFailed",
    "DataCheckReport",
    "DataError",
    "Problem",
    "check_data",
    "datalist_from_folder",
    "datalist_preset",
    "default_cache_dir",
    "foreground_threshold",
    "intensity_preset",
    "load_datalist",
    "make_ct_phantom",
    "prepare_sample_data",
    "resolve_training_data",
    "restoration_activation",
    "write_datalist",
    "write_phantom_dataset",
]
