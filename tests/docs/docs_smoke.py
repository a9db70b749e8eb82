"""A documented command at smoke scale, and how to run it (``test_docs_runnable.py``).

:func:`smoke_command` rewrites a command's tokens by the explicit rules below, in this order; everything else runs as
written:

1. **Paths** (:data:`PATH_MAP`): the own-data examples' ``/data/...`` become the sandbox folder ``data/...``, the sample
   CT cache ``.cache/sample_data/...`` becomes the phantom dataset (``$UNITED_SSL_DATA``), ``/tmp/...`` the sandbox's
   ``tmp/...``, and TransVW's paper-scale visual-word datalist name the smoke overlay's.
2. **demo -> smoke**: ``configs/demo.yaml`` becomes ``configs/smoke.yaml``, ``--overlays demo`` ``--overlays smoke``,
   ``--scale demo`` ``--scale smoke``.
3. **Paper scale -> smoke**: a training command without the smoke overlay gets it: ``tools/pretrain.py`` and
   ``tools/discover_visual_words.py`` ``--overlays smoke``, ``monai.bundle run`` with ``train.yaml`` the bundle's
   ``smoke.yaml`` right after the stage overlay (before ``multi_gpu_train.yaml``, ``refs.yaml``, ``evaluate.yaml``);
   ``tools/benchmark_scaling.py sweep`` measures at the demo overlay's width (``--width demo``), not the paper's.
4. **The smoke overlay's ids win**: a flag naming an id the bundle's ``smoke.yaml`` sets (``--max_epochs 250``,
   ``--num_samples 32``, ``--roi_size``, ``--batch_size 64``, ``--num_clusters 8``) takes the smoke value. A command
   that reads trained weights through ``inference.yaml`` (``run``, ``ckpt_export``, ``verify_net_in_out``) gets every
   id ``smoke.yaml`` and ``inference.yaml`` share at the smoke value, added if absent: the weights have the smoke
   width (``--base_channels 8`` -> 4, SwinUNETR's ``depths`` and ``num_heads``, DiRA's backbone).
5. **Run lengths** (:data:`RUN_LENGTH`): the benchmark tools' own loop counts (``--iterations``, ``--warmup``,
   ``--chunk``, ``--epochs``, ``--counts``, ``--steps``) are capped; ``torchrun --nproc_per_node`` is 2.
6. **Separate runs**: a ``tools/pretrain.py`` command with bundle overrides (own data, another objective or cube
   size) and no ``--output_dir`` is another run than the page's demo: it writes to ``runs/separate_<hash>`` (a bundle
   refuses to resume a stage of another run, so run in order the README's examples would clash in ``models/``).
7. **The pretrained network's crops**: a transfer command fine-tuning ``--pretrained_bundle X`` crops X's smoke
   ``roi_size`` (SwinUNETR's smoke network needs 64 x 32 x 32).
8. **The phantom task** (:data:`PHANTOM_TASK`): the transfer bundles' commands get the phantom's label set, validation
   subject and classes (the phantom organ stands in for the liver), where their configs define those ids;
   ``tools/transfer_benchmark.py`` and ``tools/compare_stepwise_joint.py`` get ``--profile phantom`` and the phantom
   datalist.

:func:`run_command` runs ``python tools/X.py``, ``python -m module`` and ``python -c`` in this process (no interpreter
start or torch import per command), ``torchrun`` as a subprocess (gloo on CPU, 2 processes), ``mkdir -p`` itself;
any other program fails the test (its block must be marked ``not run`` with a reason).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import re
import runpy
import shlex
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import torchrun_process
import yaml

#: Path prefixes and what they become in the sandbox (``{data}``: the phantom dataset, ``$UNITED_SSL_DATA``).
PATH_MAP: tuple[tuple[str, str], ...] = (
    ("/data", "data"),  # the own-data examples: the sandbox folder data/ (test_docs_runnable.py lays it out)
    (".cache/sample_data", "{data}"),  # the sample CT cache: the phantom dataset
    ("/tmp", "tmp"),
    ("visual_words.json", "visual_words_smoke.json"),  # TransVW's discovered datalist under the smoke overlay
)
#: Caps on the benchmark tools' own loop counts: flag -> function of the documented value.
RUN_LENGTH: dict[str, Callable[[str], str]] = {
    "iterations": lambda v: "2",
    "warmup": lambda v: "1",
    "chunk": lambda v: "1",
    # benchmark_pipeline.py: the first pass is not counted, so 2; compare_stepwise_joint.py: "stage1=30,..." -> 1 each
    "epochs": lambda v: re.sub(r"=\d+", "=1", v) if "=" in v else "2",
    "counts": lambda v: v.split(",")[0],
    "steps": lambda v: "2",
    "nproc_per_node": lambda v: "2",
}
#: Overrides of the transfer bundles on the phantom data (label set ``phantom``: 1 organ, 2 bone).
PHANTOM_TASK: dict[str, dict[str, str]] = {
    "transfer_segmentation": {"label_set": "phantom", "val_subjects": "['phantom-002']", "source_labels": "[[1]]"},
    "transfer_classification": {
        "label_set": "phantom", "val_subjects": "['phantom-002']", "class_names": "['organ','bone']",
        "source_labels": "[[1],[2]]",
    },
}  # fmt: skip
#: Parameters of tools/pretrain.py that choose stages and overlays, not another run (every other flag is an override).
PRETRAIN_PARAMETERS = ("overlays", "stages", "joint")
#: Tools whose runs benchmark the transfer tasks: they get the phantom's profile and datalist.
PHANTOM_PROFILE_TOOLS = ("tools/transfer_benchmark.py", "tools/compare_stepwise_joint.py")
#: Tools that report a failed measurement as an ``"error"`` row and still exit 0.
ERROR_ROW_TOOLS = ("tools/benchmark_pipeline.py", "tools/benchmark_scaling.py")
TORCHRUN_TIMEOUT = 240  # seconds for one torchrun launch (about 15-30 s on a quiet 2-core machine)


def _map_paths(token: str, data: str) -> str:
    # one pass (a replacement is never replaced again); a path, or a file name as a path's last part, never the
    # middle of a name
    patterns = [
        (r"(?<![\w./-])" if old.startswith(("/", ".")) else r"(?<![\w.-])") + re.escape(old) + r"(?![\w.-])"
        for old, _ in PATH_MAP
    ]
    pattern = "|".join(f"(?P<p{i}>{p})" for i, p in enumerate(patterns))
    return re.sub(pattern, lambda m: PATH_MAP[int(m.lastgroup[1:])][1].replace("{data}", data), token)


def _flag_index(tokens: list[str], name: str) -> int | None:
    for i, token in enumerate(tokens):
        if token == f"--{name}" or token.startswith(f"--{name}="):
            return i
    return None


def _get(tokens: list[str], name: str) -> str | None:
    i = _flag_index(tokens, name)
    if i is None:
        return None
    return tokens[i].partition("=")[2] if "=" in tokens[i] else tokens[i + 1]


def _set(tokens: list[str], name: str, value: str) -> list[str]:
    """``--name value`` set in place (``--name=value`` form kept), appended when absent."""
    i = _flag_index(tokens, name)
    if i is None:
        return [*tokens, f"--{name}", value]
    out = list(tokens)
    if "=" in out[i]:
        out[i] = f"--{name}={value}"
    else:
        out[i + 1] = value
    return out


@cache
def _ids(path: str) -> dict:
    data = yaml.safe_load(Path(path).read_text()) if Path(path).is_file() else None
    return data if isinstance(data, dict) else {}


def _yaml_value(value: object) -> str:
    """A config value as MONAI's CLI reads it back (``python -m monai.bundle run --id value``)."""
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _bundle(tokens: list[str]) -> str | None:
    """The bundle folder a command names (``--bundle_root`` or the first ``bundles/X`` argument)."""
    root = _get(tokens, "bundle_root")
    if root:
        return root.rstrip("/")
    for token in tokens:
        if re.fullmatch(r"bundles/[\w-]+/?", token):
            return token.rstrip("/")
    return None


def _config_files(tokens: list[str]) -> list[str] | None:
    value = _get(tokens, "config_file")
    if value is None:
        return None
    return [str(v) for v in ast.literal_eval(value)] if value.startswith("[") else [value]


def smoke_command(tokens: list[str], data: str) -> list[str]:
    """A documented command at smoke scale (see the module docstring); ``data`` is the phantom dataset's folder."""
    env = []
    while len(env) < len(tokens) and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[len(env)]):
        env.append(tokens[len(env)])
    out = [_map_paths(t, data).replace("configs/demo.yaml", "configs/smoke.yaml") for t in tokens[len(env) :]]
    for flag in ("overlays", "scale"):
        if (value := _get(out, flag)) is not None:
            out = _set(out, flag, ",".join("smoke" if v == "demo" else v for v in value.split(",")))
    bundle = _bundle(out)
    program = out[1] if len(out) > 1 and out[0] in ("python", "python3") else out[0]
    if program in ("tools/pretrain.py", "tools/discover_visual_words.py") and "smoke" not in (
        _get(out, "overlays") or ""
    ):
        out = _set(out, "overlays", ",".join(v for v in ["smoke", *(_get(out, "overlays") or "").split(",")] if v))
    if program == "tools/benchmark_scaling.py" and "sweep" in out and _get(out, "width") is None:
        out = _set(out, "width", "demo")
    if program in PHANTOM_PROFILE_TOOLS:
        out = _set(_set(out, "profile", "phantom"), "datalist", os.path.join(data, "datalist.json"))
    for flag, cap in RUN_LENGTH.items():
        if (value := _get(out, flag)) is not None:
            out = _set(out, flag, cap(value))
    if program == "tools/pretrain.py" and _get(out, "output_dir") is None:
        own = [t for t in out[3:] if t.startswith("--") and t[2:].partition("=")[0] not in PRETRAIN_PARAMETERS]
        if own:  # another run than the page's demo: its own folder (a bundle refuses to mix two runs' stages)
            digest = hashlib.sha1(shlex.join(tokens).encode()).hexdigest()[:8]
            out = _set(out, "output_dir", f"runs/separate_{digest}")
    if bundle is None or not Path(bundle, "configs", "smoke.yaml").is_file():
        return env + out
    smoke = _ids(os.path.join(bundle, "configs", "smoke.yaml"))
    files = _config_files(out)
    if files and any(f.endswith("/train.yaml") for f in files) and not any(f.endswith("/smoke.yaml") for f in files):
        last = max(i for i, f in enumerate(files) if re.search(r"/(train|stage\d|joint)\.yaml$", f))
        files.insert(last + 1, os.path.join(bundle, "configs", "smoke.yaml"))
        out = _set(out, "config_file", repr(files))
    for name in list(smoke):
        if _flag_index(out, name) is not None:
            out = _set(out, name, _yaml_value(smoke[name]))
    if files and files[-1].endswith("/inference.yaml"):  # reads the smoke-width weights
        inference = _ids(files[-1])
        for name in smoke:
            if name in inference:
                out = _set(out, name, _yaml_value(smoke[name]))
    pretrained = _get(out, "pretrained_bundle")
    if pretrained and _flag_index(out, "roi_size") is None:  # crops the pretrained network takes at smoke scale
        out = _set(out, "roi_size", _yaml_value(_ids(os.path.join(pretrained, "configs", "smoke.yaml"))["roi_size"]))
    configs = set().union(*(_ids(f) for f in files)) if files else set()
    for name, value in PHANTOM_TASK.get(Path(bundle).name, {}).items():
        if name in configs:
            out = _set(out, name, value)
    return env + out


def run_in_process(tokens: list[str]) -> int:
    """Runs ``python tools/X.py ...``, ``python -m module ...`` or ``python -c code`` in this process.

    The tool runs as ``__main__`` with its argv, so its own ``fire.Fire`` parses the documented arguments exactly as on
    the command line. Returns the exit status.
    """
    assert tokens[0] in ("python", "python3") and len(tokens) > 1, f"not a python command: {tokens}"
    module = tokens[2] if tokens[1] == "-m" else None
    argv = [module, *tokens[3:]] if module else ["-c", *tokens[3:]] if tokens[1] == "-c" else tokens[1:]
    saved = sys.argv, list(sys.path)
    sys.argv = argv
    try:
        if module:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        elif tokens[1] == "-c":
            exec(compile(tokens[2], "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102 (python -c)
        else:
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv, sys.path[:] = saved
    return 0


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_torchrun(args: list[str], env: dict[str, str], timeout: float = TORCHRUN_TIMEOUT) -> tuple[int, str]:
    """``torchrun ARGS`` as ``python -m torch.distributed.run ARGS`` in its own session (killed whole on timeout)."""
    status, output = torchrun_process.run_torchrun(args, env=env, timeout=timeout)
    if status is None:
        return -1, f"timed out after {timeout} s\n{output}"
    return status, output


def run_command(tokens: list[str]) -> tuple[int, str]:
    """Runs one (smoke-scale) command in the current directory; returns its exit status and subprocess output.

    Leading ``NAME=value`` assignments set the environment for the command.
    """
    env: dict[str, str] = {}
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):
        name, _, value = tokens[0].partition("=")
        env[name] = value
        tokens = tokens[1:]
    program = tokens[0]
    if program == "torchrun":
        return run_torchrun(tokens[1:], env)
    if program == "mkdir":
        for folder in (t for t in tokens[1:] if not t.startswith("-")):
            os.makedirs(folder, exist_ok=True)
        return 0, ""
    if program in ("python", "python3"):
        with _environment(env):
            return run_in_process(tokens), ""
    raise AssertionError(f"no smoke runner for {program!r}: mark its block <!-- docs-test: not run: <reason> -->")
