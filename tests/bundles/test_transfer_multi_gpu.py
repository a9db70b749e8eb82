"""The transfer bundles' multi-GPU overlay on CPU: two gloo ranks under torchrun, weights in sync, rank 0 saves.

Each launch appends :class:`RankDump` (defined here; the workers import this module from ``PYTHONPATH``) to
``train#handlers``: every rank saves its network at the start and the end and the sums of the batches it trained on.
Equal parameters at the end on both ranks that trained on different batches show DistributedDataParallel's gradient
averaging at work; equal starting weights show that the pretrained components were loaded before the wrap.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from torchrun_process import run_torchrun, with_pythonpath

from common.engines.distributed import unwrap

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with the gloo backend is unavailable"
)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NPROC = 2
TIMEOUT = 180  # seconds per torchrun launch


class RankDump:
    """Save ``{"rank", "started", "completed", "batches"}`` to ``<out_dir>/rank<r>.pt`` on every rank (test only)."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.states: dict[str, dict] = {}
        self.batches: list[float] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._snapshot, "started")
        engine.add_event_handler(Events.ITERATION_STARTED, self._record)
        engine.add_event_handler(Events.COMPLETED, self._snapshot, "completed")
        engine.add_event_handler(Events.COMPLETED, self._save)

    def _snapshot(self, engine: Engine, when: str) -> None:
        network = unwrap(engine.network)
        self.states[when] = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
        self.states[when + "_params"] = [n for n, p in network.named_parameters() if p.requires_grad]

    def _record(self, engine: Engine) -> None:
        self.batches.append(float(torch.as_tensor(engine.state.batch["image"]).double().sum()))

    def _save(self, engine: Engine) -> None:
        rank = dist.get_rank() if dist.is_initialized() else 0
        os.makedirs(self.out_dir, exist_ok=True)
        torch.save({"rank": rank, "batches": self.batches, **self.states}, os.path.join(self.out_dir, f"rank{rank}.pt"))


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join((text or "").splitlines()[-lines:])


def torchrun(bundle: str, overrides: dict[str, str], probe_dir: str, tmp_path) -> str:
    configs = os.path.join(REPO, "bundles", bundle, "configs")
    overlay = tmp_path / "probe.yaml"
    overlay.write_text(
        f'"+train#handlers":\n  - _target_: test_transfer_multi_gpu.RankDump\n    out_dir: "{probe_dir}"\n', encoding="utf-8"
    )
    files = [os.path.join(configs, f) for f in ("train.yaml", "smoke.yaml", "multi_gpu_train.yaml")] + [str(overlay)]
    args = [
        "--standalone", "--nnodes=1", f"--nproc_per_node={NPROC}",
        "-m", "monai.bundle", "run", "--config_file", repr(files),
        "--meta_file", os.path.join(configs, "metadata.json"), "--logging_file", os.path.join(configs, "logging.conf"),
        "--bundle_root", os.path.join(REPO, "bundles", bundle),
    ]  # fmt: skip
    for key, value in overrides.items():
        args += [f"--{key}", value]
    status, output = run_torchrun(args, env=with_pythonpath(HERE), cwd=REPO, timeout=TIMEOUT)
    if status is None:
        pytest.fail(f"torchrun {bundle} timed out after {TIMEOUT} s; output tail:\n{_tail(output)}")
    assert status == 0, f"torchrun {bundle} exited with {status}; output tail:\n{_tail(output)}"
    return output


def assert_ranks_in_sync(probe_dir: str, pretrained: dict[str, torch.Tensor], prefix: str) -> dict:
    r0, r1 = (torch.load(os.path.join(probe_dir, f"rank{r}.pt"), weights_only=True) for r in range(NPROC))
    assert (r0["rank"], r1["rank"]) == (0, 1)
    for when in ("started", "completed"):
        differing = [k for k in r0[when] if not torch.equal(r0[when][k], r1[when][k])]
        assert not differing, f"ranks differ at {when}: {differing[:5]}"
    # both ranks started from the pretrained weights and trained
    assert all(torch.equal(r0["started"][f"{prefix}.{k}"], v) for k, v in pretrained.items())
    trained = [k for k in r0["completed_params"] if not torch.equal(r0["started"][k], r0["completed"][k])]
    assert trained, "no parameter changed"
    assert len(r0["batches"]) == len(r1["batches"]) > 0 and r0["batches"] != r1["batches"], "ranks saw the same data"
    return r0


@pytest.fixture
def phantom_task(phantom_datalist: str, tmp_path) -> dict[str, str]:
    from test_transfer_segmentation import write_stage

    return {
        "dataset_dir": os.path.dirname(phantom_datalist),
        "datalist": phantom_datalist,
        "label_set": "phantom",
        "val_subjects": "['phantom-002']",
        "class_names": "['organ','bone']",
        "source_labels": "[[1],[2]]",
        "pretrained_dir": write_stage(str(tmp_path / "rotation" / "stage2")),
        "output_dir": str(tmp_path / "models"),
    }


@pytest.mark.parametrize("bundle", ["transfer_segmentation", "transfer_classification"])
def test_two_ranks_gloo(bundle: str, phantom_task: dict[str, str], tmp_path) -> None:
    probe = str(tmp_path / "probe")
    output = torchrun(bundle, phantom_task, probe, tmp_path)
    assert output.count("transfer: loaded encoder") == NPROC, _tail(output)  # every rank, before the DDP wrap
    encoder = torch.load(os.path.join(phantom_task["pretrained_dir"], "encoder.pt"), weights_only=True)
    rank0 = assert_ranks_in_sync(probe, encoder, "encoder")
    served = torch.load(os.path.join(phantom_task["output_dir"], "model.pt"), weights_only=True)
    assert served.keys() == rank0["completed"].keys()  # rank 0 saved the bare network (no "module." prefix)
