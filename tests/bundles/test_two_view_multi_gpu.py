"""MoCo, BYOL and PCRL under torchrun on two gloo ranks: the task state (queue, key network / teacher / target)
ends equal on both ranks while the ranks train on different data.

The generic multi-GPU suite (``test_method_bundles_multi_gpu.py``) checks the networks of every bundle; this file
adds the task state, which the trainer keeps outside DistributedDataParallel: the queues agree because every rank
enqueues every rank's keys (``all_gather``), the EMA copies because they follow the all-reduced online weights.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
from bundle_workflows import BUNDLES, REPO_ROOT, config
from torchrun_process import run_torchrun, with_pythonpath

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs gloo")

HERE = os.path.dirname(os.path.abspath(__file__))
NPROC = 2
TIMEOUT = 180  # seconds for one torchrun launch


def _torchrun(bundle: str, datalist: str, output_dir: str, probe_dir: str, tmp_path) -> str:
    overlay = tmp_path / "task_probe.yaml"
    overlay.write_text(f'"+train#handlers":\n  - _target_: task_probe.TaskStateDump\n    out_dir: "{probe_dir}"\n', encoding="utf-8")
    files = [config(n, bundle) for n in ("train", "stage1", "smoke", "multi_gpu_train")] + [str(overlay)]
    args = [
        "--standalone", "--nnodes=1", f"--nproc_per_node={NPROC}",
        "-m", "monai.bundle", "run", "--config_file", repr(files),
        "--meta_file", config("metadata.json", bundle), "--logging_file", config("logging.conf", bundle),
        "--bundle_root", os.path.join(BUNDLES, bundle), "--dataset_dir", os.path.dirname(datalist),
        "--datalist", datalist, "--output_dir", output_dir,
    ]  # fmt: skip
    status, output = run_torchrun(args, env=with_pythonpath(HERE), cwd=REPO_ROOT, timeout=TIMEOUT)
    if status is None:
        pytest.fail(f"torchrun {bundle} timed out after {TIMEOUT} s:\n{output[-4000:]}")
    assert status == 0, f"torchrun {bundle} exited with {status}:\n{output[-4000:]}"
    return output


@pytest.mark.parametrize("bundle", ["moco", "byol", "pcrl"])
def test_task_state_agrees_across_ranks(bundle: str, phantom_datalist: str, tmp_path) -> None:
    probe_dir = str(tmp_path / "probe")
    _torchrun(bundle, phantom_datalist, str(tmp_path / "models"), probe_dir, tmp_path)
    r0, r1 = (torch.load(os.path.join(probe_dir, f"rank{r}.pt"), weights_only=True) for r in range(NPROC))
    assert (r0["world_size"], r1["world_size"]) == (NPROC, NPROC) and r0["iteration"] == r1["iteration"] > 0
    assert r0["batch_sum"] != r1["batch_sum"]  # different data per rank
    a, b = r0["task"], r1["task"]
    assert a.keys() == b.keys()
    buffers = [k for k in a if k not in r0["task_params"] and ("running_" in k or "num_batches" in k)]
    # EMA parameters, queues, counters and the NCE normaliser agree; BatchNorm statistics of the copies are rank-local
    differing = [k for k in a if k not in buffers and not torch.equal(a[k], b[k])]
    assert not differing, f"{bundle}: ranks differ in {differing[:5]}"
    if "queue.pointer" in a:  # every step enqueued the keys of both ranks
        assert r0["batch_size"] == r1["batch_size"] and int(a["queue.seen"]) == r0["iteration"] * NPROC * r0["batch_size"]
