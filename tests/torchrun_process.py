"""Test helper: launch ``torchrun`` as a subprocess that cannot outlive its test.

The launcher runs in its own session, so on timeout it is killed together with its worker processes (nothing is
left holding a port or a core for the tests that follow). Used by the multi-GPU bundle tests, the ReFs DDP test and
the documentation runner.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def run_torchrun(
    args: list[str], env: dict[str, str] | None = None, cwd: str | None = None, timeout: float = 180.0
) -> tuple[int | None, str]:
    """Runs ``python -m torch.distributed.run ARGS`` with ``OMP_NUM_THREADS=1`` unless ``env`` sets it.

    Args:
        args: torchrun's arguments (``--standalone --nproc_per_node=2 -m monai.bundle run ...``).
        env: variables set on top of this process's environment.
        cwd: working directory of the launch.
        timeout: seconds before the launcher and its workers are killed.

    Returns:
        ``(exit status, combined stdout and stderr of all ranks)``; the exit status is ``None`` after a timeout.
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", *args]
    proc = subprocess.Popen(
        cmd, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, encoding="utf-8", errors="replace", start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return None, output
    return proc.returncode, output


def with_pythonpath(folder: str) -> dict[str, str]:
    """``PYTHONPATH`` with ``folder`` (test-only handlers the workers import) and this helper's folder (a test module
    the workers import imports this helper) first, for ``run_torchrun``'s ``env``."""
    helpers = os.path.dirname(os.path.abspath(__file__))
    return {"PYTHONPATH": os.pathsep.join(p for p in (folder, helpers, os.environ.get("PYTHONPATH")) if p)}
