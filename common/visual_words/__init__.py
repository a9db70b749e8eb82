"""TransVW self-discovery of visual words: from an unlabeled datalist to the dataset the TransVW bundle trains on."""

from common.visual_words.bundle import bundle_parser, discover_for_bundle, discovery_settings, output_paths
from common.visual_words.dataset import (
    HELDOUT_KEY,
    INFO_KEY,
    TRAIN_KEY,
    check_visual_word_datalist,
    class_centres,
    read_visual_word_info,
    require_visual_words,
    visual_word_datalist,
)
from common.visual_words.discovery import (
    DiscoveryResult,
    DiscoverySettings,
    VisualWordClass,
    VolumeWords,
    discover_visual_words,
)
from common.visual_words.embedding import build_autoencoder, embed, embedding_input, train_autoencoder
from common.visual_words.sampling import (
    clamp_center,
    multi_resolution_boxes,
    relative_to_voxel,
    sample_class_centre,
    valid_relative_range,
)
from common.visual_words.summary import discovery_summary, format_summary, save_montage, word_crops

__all__ = [
    "HELDOUT_KEY",
    "INFO_KEY",
    "TRAIN_KEY",
    "DiscoveryResult",
    "DiscoverySettings",
    "VisualWordClass",
    "VolumeWords",
    "build_autoencoder",
    "bundle_parser",
    "check_visual_word_datalist",
    "clamp_center",
    "class_centres",
    "discover_for_bundle",
    "discover_visual_words",
    "discovery_settings",
    "discovery_summary",
    "embed",
    "embedding_input",
    "format_summary",
    "multi_resolution_boxes",
    "output_paths",
    "read_visual_word_info",
    "relative_to_voxel",
    "require_visual_words",
    "sample_class_centre",
    "save_montage",
    "train_autoencoder",
    "valid_relative_range",
    "visual_word_datalist",
    "word_crops",
]
