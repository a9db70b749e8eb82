"""Transfer: target networks rebuilt from any pretrained bundle's metadata, strict loading with a report, input
channel adaptation, frozen-encoder classifiers, layer-wise learning rates and organ-patch sampling."""

from common.transfer.classifier import EncoderClassifier, deepest_feature
from common.transfer.entries import flat_labels, select_entries
from common.transfer.initialise import INITS, TRANSFER_RECORD, TransferReport, components_for, initialise
from common.transfer.input_channels import adapt_input_channels, expand_input_weight, first_convolution, input_convolutions
from common.transfer.metrics import HausdorffDistanceMM
from common.transfer.loading import ComponentLoad, load_component, output_layer_keys
from common.transfer.networks import as_bundle, build_backbone, build_classification_network, build_segmentation_network
from common.transfer.param_groups import FINETUNE_MODES, block_of, param_groups
from common.transfer.patches import LabelClassPatchesd, PatchCentreClassd, centre_index
from common.transfer.ssl_bundle import SSLBundle, backbone_settings, discover_ssl_bundles, read_ssl_bundle, stage_folders

__all__ = [
    "INITS",
    "FINETUNE_MODES",
    "TRANSFER_RECORD",
    "ComponentLoad",
    "EncoderClassifier",
    "HausdorffDistanceMM",
    "LabelClassPatchesd",
    "PatchCentreClassd",
    "SSLBundle",
    "TransferReport",
    "adapt_input_channels",
    "as_bundle",
    "backbone_settings",
    "block_of",
    "build_backbone",
    "build_classification_network",
    "build_segmentation_network",
    "centre_index",
    "components_for",
    "deepest_feature",
    "discover_ssl_bundles",
    "expand_input_weight",
    "first_convolution",
    "flat_labels",
    "initialise",
    "input_convolutions",
    "load_component",
    "output_layer_keys",
    "param_groups",
    "read_ssl_bundle",
    "select_entries",
    "stage_folders",
]
