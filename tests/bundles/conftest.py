"""Fixtures for end-to-end bundle tests: a phantom dataset and a ConfigWorkflow runner."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from monai.bundle import ConfigWorkflow

from common.data import write_phantom_dataset

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLE = os.path.join(REPO_ROOT, "bundles", "rotation")
CONFIGS = os.path.join(BUNDLE, "configs")


def config(name: str) -> str:
    """Path of a rotation bundle config file by name (``train`` -> ``configs/train.yaml``)."""
    return os.path.join(CONFIGS, name if name.endswith((".yaml", ".json", ".conf")) else f"{name}.yaml")


@pytest.fixture(scope="session")
def phantom_datalist(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A generated CT phantom dataset (no network), in the same datalist format as the real sample data."""
    return write_phantom_dataset(str(tmp_path_factory.mktemp("phantom")), num_volumes=3, shape=(48, 48, 40))


@pytest.fixture
def make_workflow(phantom_datalist: str, tmp_path) -> Callable[..., ConfigWorkflow]:
    """Build a train workflow of the rotation bundle: ``make_workflow("stage2", "smoke", **overrides)``."""

    def _make(*names: str, workflow_type: str = "train", **overrides: object) -> ConfigWorkflow:
        overrides.setdefault("dataset_dir", os.path.dirname(phantom_datalist))
        overrides.setdefault("datalist", phantom_datalist)
        overrides.setdefault("output_dir", str(tmp_path / "models"))
        files = [config("train")] if workflow_type == "train" else []
        return ConfigWorkflow(
            config_file=files + [config(n) for n in names],
            meta_file=config("metadata.json"),
            logging_file=config("logging.conf"),
            workflow_type=workflow_type,
            bundle_root=BUNDLE,
            **overrides,
        )

    return _make


def run(workflow: ConfigWorkflow) -> ConfigWorkflow:
    """initialize, check the bundle properties, run and finalize."""
    workflow.initialize()
    assert workflow.check_properties() == []
    workflow.run()
    workflow.finalize()
    return workflow
