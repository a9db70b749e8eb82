"""Proxy-task transforms: one file per task; each emits ``image``, ``target`` and a task key."""

from common.transforms.rotation import ROTATION_GROUPS, RandRotationPretextd, apply_rotation, rotation_group

__all__ = ["ROTATION_GROUPS", "RandRotationPretextd", "apply_rotation", "rotation_group"]
