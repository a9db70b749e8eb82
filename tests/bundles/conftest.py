"""Fixtures for end-to-end bundle tests: a phantom dataset and a ConfigWorkflow runner."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from monai.bundle import ConfigWorkflow

from common.data import write_phantom_dataset

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLES = os.path.join(REPO_ROOT, "bundles")
BUNDLE = os.path.join(BUNDLES, "rotation")
#: The method bundles (generated from the shared template: they have a method.yaml).
METHOD_BUNDLES = sorted(d for d in os.listdir(BUNDLES) if os.path.isfile(os.path.join(BUNDLES, d, "method.yaml")))


def config(name: str, bundle: str = "rotation") -> str:
    """Path of a bundle config file by name (``train`` -> ``bundles/<bundle>/configs/train.yaml``)."""
    return os.path.join(BUNDLES, bundle, "configs", name if name.endswith((".yaml", ".json", ".conf")) else f"{name}.yaml")


@pytest.fixture(scope="session")
def phantom_datalist(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A generated CT phantom dataset (no network), in the same datalist format as the real sample data."""
    return write_phantom_dataset(str(tmp_path_factory.mktemp("phantom")), num_volumes=3, shape=(48, 48, 40))


@pytest.fixture
def make_workflow(phantom_datalist: str, tmp_path) -> Callable[..., ConfigWorkflow]:
    """Build a workflow of a bundle: ``make_workflow("stage2", "smoke", bundle="jigsaw", **overrides)``.

    ``train.yaml`` comes first for train workflows; the named configs follow in order. The data default to the
    session's phantom datalist, the outputs to the test's temporary folder.
    """

    def _make(*names: str, workflow_type: str = "train", bundle: str = "rotation", **overrides: object) -> ConfigWorkflow:
        overrides.setdefault("dataset_dir", os.path.dirname(phantom_datalist))
        overrides.setdefault("datalist", phantom_datalist)
        overrides.setdefault("output_dir", str(tmp_path / "models"))
        files = [config("train", bundle)] if workflow_type == "train" else []
        return ConfigWorkflow(
            config_file=files + [config(n, bundle) for n in names],
            meta_file=config("metadata.json", bundle),
            logging_file=config("logging.conf", bundle),
            workflow_type=workflow_type,
            bundle_root=os.path.join(BUNDLES, bundle),
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
