"""Helpers of the end-to-end bundle tests: bundle paths, config paths, a workflow factory and a runner.

Kept out of ``conftest.py`` so tests import them by a module name no other test folder uses (``from conftest
import`` resolves to whichever folder's conftest Python imported first).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from monai.bundle import ConfigWorkflow

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLES = os.path.join(REPO_ROOT, "bundles")
BUNDLE = os.path.join(BUNDLES, "rotation")
#: The method bundles (generated from the shared template: they have a method.yaml).
METHOD_BUNDLES = sorted(d for d in os.listdir(BUNDLES) if os.path.isfile(os.path.join(BUNDLES, d, "method.yaml")))


def config(name: str, bundle: str = "rotation") -> str:
    """Path of a bundle config file by name (``train`` -> ``bundles/<bundle>/configs/train.yaml``)."""
    return os.path.join(BUNDLES, bundle, "configs", name if name.endswith((".yaml", ".json", ".conf")) else f"{name}.yaml")


def workflow_factory(datalist: str | Callable[[str], str], output_dir: str) -> Callable[..., ConfigWorkflow]:
    """Build workflows of any bundle on ``datalist`` (a path, or ``bundle -> path``), writing to ``output_dir``."""

    def _make(*names: str, workflow_type: str = "train", bundle: str = "rotation", **overrides: object) -> ConfigWorkflow:
        path = datalist(bundle) if callable(datalist) else datalist
        overrides.setdefault("dataset_dir", os.path.dirname(path))
        overrides.setdefault("datalist", path)
        overrides.setdefault("output_dir", output_dir)
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
