"""The multi-GPU overlay of every method bundle on CPU: two gloo ranks under torchrun, and proof that they stay in sync.

Each torchrun launch appends :class:`ddp_probe.RankStateDump` (a test-only handler in this folder, put on the
workers' ``PYTHONPATH``) to ``train#handlers`` through a small overlay YAML, so every rank saves its network and
adversary at the start and at the end of training. Equal parameters on both ranks at the end, while the ranks'
input batches and local losses differ, show that the generator's DDP gradient all-reduce
and the critic's hand-averaged gradients (``common.engines.distributed``) both work on different data per rank.
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch
import torch.distributed as dist
from bundle_workflows import BUNDLES, METHOD_BUNDLES, REPO_ROOT, config
from torchrun_process import run_torchrun, with_pythonpath

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with the gloo backend is unavailable"
)

HERE = os.path.dirname(os.path.abspath(__file__))
NPROC = 2
TIMEOUT = 120  # seconds, for one torchrun launch (about 10-15 s on a quiet 2-core machine)
HANDOFF_LINE = "stage hand-off: loaded encoder"
STAGE_FILES = {
    "stage1": {"encoder.pt", "head.pt", "checkpoint_final.pt"},
    "stage3": {"encoder.pt", "head.pt", "decoder.pt", "adversary.pt", "model.pt", "checkpoint_final.pt"},
}


def _tail(text: str | bytes | None, lines: int = 80) -> str:
    """The last ``lines`` lines of a run's output, preceded by its first distinct error lines (often cut off)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    all_lines = (text or "").splitlines()
    errors = list(dict.fromkeys(line.strip() for line in all_lines if "Error:" in line or "ERROR" in line))[:5]
    head = "first errors:\n" + "\n".join(errors) + "\n---\n" if errors else ""
    return head + "\n".join(all_lines[-lines:])


def torchrun(stage: str, datalist: str, output_dir: str, probe_dir: str, tmp_path, bundle: str = "rotation") -> str:
    """Run ``train.yaml + <stage>.yaml + smoke.yaml + multi_gpu_train.yaml`` (+ the probe overlay) on 2 gloo ranks.

    Returns the combined stdout and stderr of all ranks; fails the test with their tail on error or timeout.
    """
    probe_overlay = tmp_path / "ddp_probe.yaml"
    probe_overlay.write_text(
        f'"+train#handlers":\n  - _target_: ddp_probe.RankStateDump\n    out_dir: "{probe_dir}"\n', encoding="utf-8"
    )
    files = [config(n, bundle) for n in ("train", stage, "smoke", "multi_gpu_train")] + [str(probe_overlay)]
    args = [
        "--standalone", "--nnodes=1", f"--nproc_per_node={NPROC}",
        "-m", "monai.bundle", "run",
        "--config_file", repr(files),
        "--meta_file", config("metadata.json", bundle),
        "--logging_file", config("logging.conf", bundle),
        "--bundle_root", os.path.join(BUNDLES, bundle),
        "--dataset_dir", os.path.dirname(datalist),
        "--datalist", datalist,
        "--output_dir", output_dir,
    ]  # fmt: skip
    status, output = run_torchrun(args, env=with_pythonpath(HERE), cwd=REPO_ROOT, timeout=TIMEOUT)
    if status is None:
        pytest.fail(f"torchrun {bundle} {stage} timed out after {TIMEOUT} s; output tail:\n{_tail(output)}")
    assert status == 0, f"torchrun {bundle} {stage} exited with {status}; output tail:\n{_tail(output)}"
    return output


def _load(path: str) -> dict:
    assert os.path.isfile(path), f"{path} was not written"
    return torch.load(path, map_location="cpu", weights_only=True)


def _rank_states(probe_dir: str) -> list[dict]:
    dumps = [_load(os.path.join(probe_dir, f"rank{r}.pt")) for r in range(NPROC)]
    assert [(d["rank"], d["world_size"]) for d in dumps] == [(r, NPROC) for r in range(NPROC)]
    return dumps


def _differing(a: dict, b: dict, keys) -> list[str]:
    return [k for k in keys if not torch.equal(a[k], b[k])]


def assert_ranks_in_sync(probe_dir: str, component: str) -> tuple[dict, dict]:
    """Both ranks start equal and end with equal parameters of ``component`` (``network`` or ``adversary``).

    Returns rank 0's ``started`` and ``completed`` states of the component.
    """
    dumps = _rank_states(probe_dir)
    r0, r1 = dumps
    names = r0["completed"][f"{component}_params"]
    assert names, f"no {component} parameters were dumped"
    assert r0["completed"][component].keys() == r1["completed"][component].keys()
    # every rank starts from the same weights and buffers (hand-off before the DDP wrap, critic broadcast)
    start_diff = _differing(r0["started"][component], r1["started"][component], r0["started"][component])
    assert not start_diff, f"{component}: ranks start from different tensors: {start_diff[:5]}"
    # every rank ends with the same parameters
    end_diff = _differing(r0["completed"][component], r1["completed"][component], names)
    assert not end_diff, f"{component}: ranks ended with different parameters: {end_diff[:5]}"
    # and training did change them
    assert r0["completed"]["iteration"] == r1["completed"]["iteration"] > 0
    assert _differing(r0["started"][component], r0["completed"][component], names), f"{component} did not train"
    return r0["started"][component], r0["completed"][component]


def assert_ranks_saw_different_data(probe_dir: str) -> None:
    """The ranks trained on different batches (the DistributedSampler splits the volumes) with different local
    losses, so the equal parameters are the work of the gradient synchronisation, not of identical inputs."""
    r0, r1 = (d["batches"] for d in _rank_states(probe_dir))
    assert len(r0) == len(r1) > 0, f"iterations per rank differ: {len(r0)} vs {len(r1)}"
    assert all(a[0] != b[0] for a, b in zip(r0, r1)), f"the ranks got identical batches (image sums {r0} vs {r1})"
    assert any(a[1] != b[1] for a, b in zip(r0, r1)), f"the ranks' local losses are identical ({r0} vs {r1})"


def assert_exports_match(stage_dir: str, network: dict, adversary: dict) -> None:
    """Rank 0's exported component files hold the weights it trained."""
    for name in ("encoder", "head", "decoder"):
        path = os.path.join(stage_dir, f"{name}.pt")
        if os.path.isfile(path):
            exported = _load(path)
            ours = {k[len(name) + 1 :]: v for k, v in network.items() if k.startswith(f"{name}.")}
            assert exported.keys() == ours.keys() and not _differing(exported, ours, ours), f"{name}.pt != rank 0"
    if adversary:
        exported = _load(os.path.join(stage_dir, "adversary.pt"))
        assert exported.keys() == adversary.keys() and not _differing(exported, adversary, adversary), "adversary.pt"


@pytest.mark.parametrize("bundle", METHOD_BUNDLES)
def test_stage3_two_ranks_gloo(chained_stages, bundle: str, bundle_datalist, tmp_path) -> None:
    output_dir, probe_dir = str(tmp_path / "models"), str(tmp_path / "probe")
    for stage in ("stage1", "stage2"):  # the session's chained smoke stages 1 and 2 of this bundle
        shutil.copytree(chained_stages(bundle)[stage], os.path.join(output_dir, stage))
    stage2_dir = os.path.join(output_dir, "stage2")
    output = torchrun("stage3", bundle_datalist(bundle), output_dir, probe_dir, tmp_path, bundle)

    stage_dir = os.path.join(output_dir, "stage3")
    missing = STAGE_FILES["stage3"] - set(os.listdir(stage_dir))
    assert not missing, f"stage 3 did not write {sorted(missing)}; output tail:\n{_tail(output)}"
    # rank 0 logs its hand-off (other ranks print warnings only); the probe shows every rank started from its weights
    assert output.count(HANDOFF_LINE) == 1, f"expected rank 0's hand-off line; output tail:\n{_tail(output)}"
    before = _load(os.path.join(stage2_dir, "encoder.pt"))
    after = _load(os.path.join(stage_dir, "encoder.pt"))
    assert before.keys() == after.keys() and _differing(before, after, before), "stage 3 did not change the encoder"

    # the generator (DDP) and the critic (unwrapped, hand-averaged gradients) stay in sync across ranks
    _, network = assert_ranks_in_sync(probe_dir, "network")
    _, adversary = assert_ranks_in_sync(probe_dir, "adversary")
    assert_ranks_saw_different_data(probe_dir)
    assert_exports_match(stage_dir, network, adversary)


def test_rotation_stage1_two_ranks_gloo(phantom_datalist: str, tmp_path) -> None:
    output_dir, probe_dir = str(tmp_path / "models"), str(tmp_path / "probe")
    output = torchrun("stage1", phantom_datalist, output_dir, probe_dir, tmp_path)

    stage_dir = os.path.join(output_dir, "stage1")
    missing = STAGE_FILES["stage1"] - set(os.listdir(stage_dir))
    assert not missing, f"stage 1 did not write {sorted(missing)}; output tail:\n{_tail(output)}"
    assert not {"decoder.pt", "adversary.pt"} & set(os.listdir(stage_dir))
    assert HANDOFF_LINE not in output  # stage 1 starts from scratch

    _, network = assert_ranks_in_sync(probe_dir, "network")
    assert_ranks_saw_different_data(probe_dir)
    assert not _rank_states(probe_dir)[0]["completed"]["adversary"]  # no critic in stage 1
    assert_exports_match(stage_dir, network, {})
