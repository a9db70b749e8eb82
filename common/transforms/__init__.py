"""Proxy-task transforms: one file per task; each emits ``image``, ``target`` and a task key."""

from common.transforms.bezier_intensity import RandBezierIntensityd, bezier_curve, bezier_lookup, interp
from common.transforms.corruption import RandCorruptiond
from common.transforms.elastic import RandElasticDeformd, elastic_displacement, warp
from common.transforms.genesis import RandGenesisCorruptiond
from common.transforms.local_shuffle import RandLocalPixelShuffled
from common.transforms.painting import RandInPaintd, RandOutPaintd
from common.transforms.patch_swap import RandPatchSwapd
from common.transforms.rotation import ROTATION_GROUPS, RandRotationPretextd, apply_rotation, rotation_group
from common.transforms.swin_views import RandSwinViewsd
from common.transforms.transvw import RandTransVWCorruptiond
from common.transforms.visual_words import RandVisualWordCropd, crop_box, crop_word
from common.transforms.spatial_code import CODE_SIZE, RandSpatialCoded, apply_spatial_code, identity_code, spatial_code
from common.transforms.two_views import RandCropPaird, box_iou

__all__ = [
    "ROTATION_GROUPS",
    "RandBezierIntensityd",
    "RandCorruptiond",
    "RandElasticDeformd",
    "RandGenesisCorruptiond",
    "RandInPaintd",
    "RandLocalPixelShuffled",
    "RandOutPaintd",
    "RandPatchSwapd",
    "RandRotationPretextd",
    "RandSwinViewsd",
    "RandTransVWCorruptiond",
    "RandVisualWordCropd",
    "apply_rotation",
    "bezier_curve",
    "bezier_lookup",
    "crop_box",
    "crop_word",
    "elastic_displacement",
    "interp",
    "rotation_group",
    "warp",
    "CODE_SIZE",
    "RandCropPaird",
    "RandSpatialCoded",
    "apply_spatial_code",
    "box_iou",
    "identity_code",
    "spatial_code",
]
from common.transforms.fixed_cubes import FixedCubeSamplesd
from common.transforms.jigsaw import RandJigsawd, gap_width, jigsaw
from common.transforms.permutations import hamming_permutations, min_pairwise_hamming, pairwise_hamming
from common.transforms.rubiks_cube import HALF_TURN_PLANES, RandRubiksCubed, half_turn
from common.transforms.subcubes import cell_size, grid_cells, place_cells, seam_band

__all__ += ["FixedCubeSamplesd", "HALF_TURN_PLANES", "RandJigsawd", "RandRubiksCubed", "cell_size", "gap_width"]
__all__ += ["grid_cells", "half_turn", "hamming_permutations", "jigsaw", "min_pairwise_hamming", "pairwise_hamming"]
__all__ += ["place_cells", "seam_band"]
