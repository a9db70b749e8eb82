"""Fixtures for end-to-end bundle tests: a phantom dataset and a ConfigWorkflow runner."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pydoc import locate

import pytest
from bundle_workflows import BUNDLES, config, workflow_factory
from monai.bundle import ConfigWorkflow

from common.data import write_phantom_dataset


@pytest.fixture(scope="session")
def phantom_datalist(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A generated CT phantom dataset (no network), in the same datalist format as the real sample data."""
    return write_phantom_dataset(str(tmp_path_factory.mktemp("phantom")), num_volumes=3, shape=(48, 48, 40))


@pytest.fixture(scope="session")
def bundle_datalist(phantom_datalist: str) -> Callable[[str], str]:
    """``bundle -> datalist`` the bundle trains on: the phantom datalist, or what the bundle prepares from it.

    A bundle whose metadata names a ``united_ssl.prepare_datalist`` function (TransVW discovers its visual words)
    gets that function's output for the smoke overlay, as a user runs it before training; prepared once per session.
    """
    cache: dict[str, str] = {}

    def _get(bundle: str) -> str:
        if bundle not in cache:
            prepare = json.load(open(config("metadata.json", bundle))).get("united_ssl", {}).get("prepare_datalist")
            if prepare is None:
                cache[bundle] = phantom_datalist
            else:
                written = locate(prepare)(os.path.join(BUNDLES, bundle), ["smoke"], phantom_datalist, montage_classes=0, progress=False)
                cache[bundle] = written["datalist"] if isinstance(written, dict) else written
        return cache[bundle]

    return _get


@pytest.fixture
def make_workflow(bundle_datalist, tmp_path) -> Callable[..., ConfigWorkflow]:
    """Build a workflow of a bundle: ``make_workflow("stage2", "smoke", bundle="jigsaw", **overrides)``.

    ``train.yaml`` comes first for train workflows; the named configs follow in order. The data default to the
    bundle's datalist built from the session's phantom (:func:`bundle_datalist`), the outputs to the test's temporary
    folder.
    """
    return workflow_factory(bundle_datalist, str(tmp_path / "models"))


def _component(workflow: ConfigWorkflow, name: str):
    if name in ("adversary", "task"):
        return workflow.parser.get_parsed_content("adversary_def" if name == "adversary" else "task")
    return getattr(workflow.parser.get_parsed_content("network_def"), name)


@pytest.fixture(scope="session")
def chained_stages(bundle_datalist, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict]:
    """Stages 1, 2 and 3 of a bundle at smoke scale, run once per session and bundle (``check_properties`` checked).

    Returns a function ``bundle -> {"stage1": stage_dir, "stage2": ..., "stage3": ..., "started": {stage: {...}}}``
    where ``started[stage]`` holds, right after ``initialize``, the state dict of every handed-off component, the
    ``handoff_components`` and whether the stage built a decoder and an adversary. Tests that change a stage folder
    must copy it first.
    """
    cache: dict[str, dict] = {}

    def _get(bundle: str) -> dict:
        if bundle not in cache:
            make = workflow_factory(bundle_datalist, str(tmp_path_factory.mktemp(f"chain-{bundle}") / "models"))
            result: dict = {"started": {}}
            for stage in ("stage1", "stage2", "stage3"):
                workflow = make(stage, "smoke", bundle=bundle)
                workflow.initialize()
                assert workflow.check_properties() == []
                handoff = workflow.parser.get_parsed_content("handoff_components")
                result["started"][stage] = {
                    "handoff": {n: {k: v.clone() for k, v in _component(workflow, n).state_dict().items()} for n in handoff},
                    "decoder": workflow.parser.get_parsed_content("network_def").decoder is not None,
                    "adversary": workflow.parser.get_parsed_content("adversary_def") is not None,
                }
                workflow.run()
                workflow.finalize()
                result[stage] = workflow.parser.get_parsed_content("stage_dir")
            cache[bundle] = result
        return cache[bundle]

    return _get
