"""Handlers: stage hand-off, per-stage checkpoints and resume, component export, progress display."""

from common.handlers.component_exporter import MANIFEST, ComponentExporter
from common.handlers.progress import ProgressBarHandler
from common.handlers.run_record import RUN_RECORD, RunRecorder, read_run_record
from common.handlers.stage_checkpoint import FINAL_CHECKPOINT, StageCheckpointSaver, StageResume, latest_checkpoint
from common.handlers.stage_handoff import load_component, load_previous_stage

__all__ = [
    "FINAL_CHECKPOINT",
    "MANIFEST",
    "ComponentExporter",
    "ProgressBarHandler",
    "RUN_RECORD",
    "RunRecorder",
    "read_run_record",
    "StageCheckpointSaver",
    "StageResume",
    "latest_checkpoint",
    "load_component",
    "load_previous_stage",
]
