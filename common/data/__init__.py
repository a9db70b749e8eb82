"""Data: datalists, folder scanning, the real sample CT data and a generated phantom for unit tests."""

from common.data.datalist import datalist_from_folder, load_datalist, resolve_training_data, write_datalist
from common.data.presets import PRESETS, intensity_preset, restoration_activation
from common.data.phantom import make_ct_phantom, write_phantom_dataset
from common.data.sample_data import default_cache_dir, prepare_sample_data

__all__ = [
    "PRESETS",
    "intensity_preset",
    "restoration_activation",
    "datalist_from_folder",
    "default_cache_dir",
    "load_datalist",
    "make_ct_phantom",
    "prepare_sample_data",
    "resolve_training_data",
    "write_datalist",
    "write_phantom_dataset",
]
