"""ReFs (Xie et al., MedIA 2024): a supervised reference task trained with any method, with encoder-gradient matching.

``bundles/<method>/configs/refs.yaml`` (from ``tools/bundle_template/configs/refs.yaml``) wires these parts into any
3D method bundle; ``docs/refs.md`` explains the formula, the choices and a measured run.
"""

from common.refs.data import (
    ReferenceBatches,
    reference_datalist,
    reference_entries,
    reference_labels,
    reference_loader,
    reference_num_classes,
)
from common.refs.gradients import GradientMatch, flat_gradient, global_mean, match_gradients, pcgrad_correction
from common.refs.model import ReferenceHead, ReferenceModel, last_parametrised_layer, load_reference_head, training_network
from common.refs.objective import RefsObjective, RefsOutputs

__all__ = [
    "GradientMatch",
    "ReferenceBatches",
    "ReferenceHead",
    "ReferenceModel",
    "RefsObjective",
    "RefsOutputs",
    "flat_gradient",
    "global_mean",
    "last_parametrised_layer",
    "load_reference_head",
    "match_gradients",
    "pcgrad_correction",
    "reference_datalist",
    "reference_entries",
    "reference_labels",
    "reference_loader",
    "reference_num_classes",
    "training_network",
]
