"""Handlers: stage hand-off, checkpoints and resume, component export, run record, metrics log, progress display."""

from common.handlers.component_exporter import MANIFEST, MODEL, TASK, ComponentExporter
from common.handlers.handler_list import HandlerList
from common.handlers.learning_summary import LearningSummary, StageSummary, format_summaries, stage_summary
from common.handlers.metrics_log import METRICS_LOG, MetricsLog, read_metrics_log
from common.handlers.progress import ProgressBarHandler
from common.handlers.run_record import RUN_RECORD, RunRecorder, read_run_record
from common.handlers.stage_checkpoint import FINAL_CHECKPOINT, StageCheckpointSaver, StageResume, latest_checkpoint
from common.handlers.stage_handoff import load_component, load_previous_stage

__all__ = [
    "FINAL_CHECKPOINT",
    "MANIFEST",
    "ComponentExporter",
    "HandlerList",
    "LearningSummary",
    "METRICS_LOG",
    "MODEL",
    "MetricsLog",
    "TASK",
    "ProgressBarHandler",
    "RUN_RECORD",
    "RunRecorder",
    "read_metrics_log",
    "stage_summary",
    "read_run_record",
    "StageCheckpointSaver",
    "StageSummary",
    "StageResume",
    "format_summaries",
    "latest_checkpoint",
    "load_component",
    "load_previous_stage",
]
