"""Every command and every local link in the documentation works as written.

The documentation is ``README.md``, ``docs/*.md`` and ``bundles/*/docs/README.md``. From each file this test takes
every fenced ``bash`` block and splits it into commands (continuation lines joined, comments dropped, ``&&``,
``;`` and ``|`` separating commands), then:

* **checks every command statically**: ``python tools/X.py`` must name an existing tool, and every flag must be a
  parameter of the function the tool hands to ``fire.Fire`` (read from the tool's source); required parameters must
  be given. Where that function takes bundle overrides (``tools/pretrain.py``), every other flag must be an id of
  the bundle's configs. ``python -m monai.bundle <command>`` (also under ``torchrun``) must name a MONAI bundle
  command whose signature takes the flags; the files of ``--config_file``, ``--meta_file``, ``--bundle_root`` ...
  must exist, and every override must be an id of those configs (MONAI would otherwise add an unused id
  silently). Any other repository path a command names (``bundles/...``, ``tools/...``, ``docs/...``) must exist,
  except what runs write (``models/``, ``eval/``, ``runs/``, ``plots/``).
* **checks every local link** (``[text](path)``, images included) resolves to an existing file or folder;
* **runs the blocks marked ``<!-- docs-test: run -->``** (the line before the fence) at smoke scale: the bash blocks
  page by page, then the marked ``python`` blocks (which may read what the bash blocks wrote), in this process, in a
  temporary copy of ``tools/`` and ``bundles/``: the ``demo`` overlay becomes ``smoke``, ``UNITED_SSL_DATA`` points at
  a phantom dataset (:func:`common.data.write_phantom_dataset`) and the folder ``my_ct/`` holds phantom volumes
  without a datalist (the "own data" examples). Every command must exit 0, every Python block run without error.

``test_checker_finds_broken_commands_and_links`` feeds the checker a deliberately broken page and asserts it
reports each fault, so the checks above can fail.
"""

from __future__ import annotations

import ast
import inspect
import logging
import os
import re
import runpy
import shlex
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RUN_MARKER = "<!-- docs-test: run -->"
#: Path prefixes a command may name that must exist in the repository.
REPO_PREFIXES = ("bundles/", "tools/", "docs/", "common/", "tests/")
#: Path parts that runs write (a command may name them before they exist).
RUN_OUTPUTS = ("/models/", "/models", "/eval/", "runs/", "/plots")
#: ``monai.bundle run`` parameters whose values are files or folders that must exist.
FILE_FLAGS = ("config_file", "meta_file", "logging_file", "bundle_root", "args_file", "filepath", "ckpt_file")
#: Flags of ``monai.bundle`` commands that write their value (not checked for existence).
OUTPUT_FLAGS = {"ckpt_export": ("filepath",)}

_FENCE = re.compile(r"^(?P<marker><!-- docs-test: run -->\n)?```(?P<lang>bash|python)\n(?P<body>.*?)^```", re.M | re.S)
_LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


@dataclass(frozen=True)
class Block:
    """One fenced bash block: the file, the line of its fence, its text and whether it is marked runnable."""

    path: Path
    line: int
    text: str
    runnable: bool
    lang: str = "bash"


def doc_files() -> list[Path]:
    """The documentation files, README first."""
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(REPO.glob("bundles/*/docs/README.md"))]
    return [f for f in files if f.is_file()]


def fenced_blocks(path: Path, text: str | None = None) -> list[Block]:
    """The fenced ``bash`` and ``python`` blocks of a Markdown file, with the line of each fence."""
    text = path.read_text() if text is None else text
    blocks = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start("body"))
        blocks.append(Block(path, line, m.group("body"), bool(m.group("marker")), m.group("lang")))
    return blocks


def bash_blocks(path: Path, text: str | None = None) -> list[Block]:
    """The fenced ``bash`` blocks of a Markdown file."""
    return [b for b in fenced_blocks(path, text) if b.lang == "bash"]


def commands(block: str) -> Iterator[list[str]]:
    """The commands of a bash block as token lists (``&&``, ``;``, ``|`` split; comments and ``#!`` dropped)."""
    text = re.sub(r"\\\n\s*", " ", block)
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens, current = list(lexer), []
        for token in tokens:
            if token in ("&&", ";", "|", "||", "&"):
                if current:
                    yield current
                current = []
            else:
                current.append(token)
        if current:
            yield current


def parse_flags(args: list[str], boolean: set[str] = frozenset()) -> tuple[list[str], dict[str, str | None]]:
    """Positional arguments and ``--flag value`` pairs, as python-fire and MONAI read them.

    A flag in ``boolean`` takes a value only when the next token is ``True``/``False``; ``--flag=value`` works too.
    """
    positional, flags, i = [], {}, 0
    while i < len(args):
        token = args[i]
        if token.startswith("--"):
            name, eq, value = token[2:].partition("=")
            name = name.replace("-", "_")
            if eq:
                flags[name] = value
            elif name in boolean and not (i + 1 < len(args) and args[i + 1] in ("True", "False", "true", "false")):
                flags[name] = None
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                flags[name] = args[i + 1]
                i += 1
            else:
                flags[name] = None
        else:
            positional.append(token)
        i += 1
    return positional, flags


@dataclass(frozen=True)
class Signature:
    """What a tool's fire target accepts."""

    params: tuple[str, ...]
    positional: tuple[str, ...]
    var_positional: bool
    required: tuple[str, ...]
    booleans: frozenset[str]
    var_keyword: bool


@cache
def fire_targets(tool: Path) -> dict[str | None, Signature | None]:
    """What a tool hands to ``fire.Fire``, read from its source: ``{None: signature}`` for one function, or
    ``{command: signature}`` for a dict of commands. A signature is ``None`` when the function is not defined in the
    tool itself (imported), so its flags cannot be checked here.

    Raises:
        AssertionError: when the tool has no ``fire.Fire(...)`` call.
    """
    tree = ast.parse(tool.read_text())
    target = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "fire.Fire" and node.args:
            target = node.args[0]
    assert target is not None, f"{tool}: no fire.Fire(...) call"
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    if isinstance(target, ast.Dict):
        names = {ast.literal_eval(k): ast.unparse(v) for k, v in zip(target.keys, target.values)}
    else:
        names = {None: ast.unparse(target)}
    return {command: _signature(functions[name]) if name in functions else None for command, name in names.items()}


def _signature(fn: ast.FunctionDef) -> Signature:
    positional = fn.args.posonlyargs + fn.args.args
    defaults = [None] * (len(positional) - len(fn.args.defaults)) + list(fn.args.defaults)
    args, defaults = positional + fn.args.kwonlyargs, defaults + list(fn.args.kw_defaults)
    required = tuple(a.arg for a, d in zip(args, defaults) if d is None)
    booleans = frozenset(
        a.arg for a, d in zip(args, defaults) if isinstance(d, ast.Constant) and isinstance(d.value, bool)
    )
    return Signature(
        tuple(a.arg for a in args), tuple(a.arg for a in positional), fn.args.vararg is not None, required, booleans,
        fn.args.kwarg is not None,
    )  # fmt: skip


@cache
def config_ids(files: tuple[str, ...]) -> frozenset[str]:
    """The top-level ids of bundle config files (YAML or JSON)."""
    ids: set[str] = set()
    for f in files:
        data = yaml.safe_load((REPO / f).read_text()) if (REPO / f).is_file() else None
        if isinstance(data, dict):
            ids.update(str(k) for k in data)
    return frozenset(ids)


def bundle_config_files(bundle: str, overlays: list[str]) -> tuple[str, ...]:
    """``train.yaml``, every stage overlay and the named overlays of a bundle (what ``tools/pretrain.py`` merges)."""
    configs = f"{bundle.rstrip('/')}/configs"
    stages = [f"{configs}/{s}.yaml" for s in ("stage1", "stage2", "stage3", "joint")]
    named = [o if o.endswith(".yaml") else f"{configs}/{o}.yaml" for o in overlays]
    return (f"{configs}/train.yaml", *stages, *named)


def _is_run_output(path: str) -> bool:
    return any(part in path for part in RUN_OUTPUTS)


def _check_path(path: str, what: str, problems: list[str]) -> None:
    if _is_run_output(path) or path.startswith((".cache", "/", "~", "$")):
        return
    if not (REPO / path).exists():
        problems.append(f"{what} {path!r} does not exist")


def _check_ids(
    flags: dict[str, str | None], known: set[str], ids: frozenset[str], where: str, problems: list[str]
) -> None:
    for name in flags:
        if name in known:
            continue
        root = name.split("#")[0]
        if root not in ids:
            problems.append(f"--{name} is neither a parameter nor an id of {where}")


def check_tool(tokens: list[str], problems: list[str]) -> None:
    """``python tools/X.py ...``: the tool exists, its fire target takes every flag, required ones are given."""
    tool = tokens[0]
    if not (REPO / tool).is_file():
        problems.append(f"{tool} does not exist")
        return
    targets, args = fire_targets(REPO / tool), tokens[1:]
    if None not in targets:  # a dict of commands: the first argument names one
        if not args or args[0] not in targets:
            problems.append(f"{tool}: the first argument must be one of the commands {sorted(targets)}")
            return
        tool, sig, args = f"{tool} {args[0]}", targets[args[0]], args[1:]
    else:
        sig = targets[None]
    if sig is None:
        return
    positional, flags = parse_flags(args, set(sig.booleans))
    if "help" in flags:
        return
    bound = dict(zip(sig.positional, positional))
    if len(positional) > len(sig.positional) and not sig.var_positional:
        problems.append(f"{tool}: {len(positional)} positional arguments, it takes at most {len(sig.positional)}")
    for name in sig.required:
        if name not in bound and name not in flags:
            problems.append(f"{tool}: required argument {name!r} missing")
    unknown = {k: v for k, v in flags.items() if k not in sig.params}
    if unknown and not sig.var_keyword:
        problems.extend(f"{tool}: --{k} is not a parameter of its fire target" for k in unknown)
    bundle = bound.get("bundle_dir") or flags.get("bundle_dir")
    # a tool on a bundle of this repository: its overlays must exist, and its other flags are bundle overrides
    if bundle and bundle.startswith("bundles/") and "bundle_dir" in sig.params:
        overlays = [o for o in re.split(r"[,\s]+", str(flags.get("overlays") or "")) if o]
        files = bundle_config_files(bundle, overlays)
        for f in files[:1] + files[5:]:
            _check_path(f, f"{tool}: config", problems)
        if unknown and sig.var_keyword:
            _check_ids(unknown, set(), config_ids(files), f"the configs of {bundle}", problems)
    for value in [*positional, *(v for v in flags.values() if v)]:
        if value.startswith(REPO_PREFIXES):
            _check_path(value, f"{tool}: path", problems)


def _config_list(value: str) -> list[str]:
    if value.startswith("["):
        return [str(v) for v in ast.literal_eval(value)]
    return [value]


def check_monai_bundle(args: list[str], problems: list[str]) -> None:
    """``python -m monai.bundle <command> ...``: a real command, its flags, its files and its overrides."""
    import monai.bundle.scripts as scripts

    if not args:
        problems.append("monai.bundle: no command")
        return
    command, rest = args[0], args[1:]
    fn = getattr(scripts, command, None)
    if fn is None or not callable(fn):
        problems.append(f"monai.bundle {command}: no such command")
        return
    sig = inspect.signature(fn)
    params = {p for p in sig.parameters if sig.parameters[p].kind is not inspect.Parameter.VAR_KEYWORD}
    var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    positional, flags = parse_flags(rest)
    if positional:
        problems.append(f"monai.bundle {command}: unexpected positional arguments {positional}")
    configs: list[str] = []
    for name in FILE_FLAGS:
        if name in flags and flags[name] and name not in OUTPUT_FLAGS.get(command, ()):
            values = _config_list(flags[name]) if name == "config_file" else [flags[name]]
            for v in values:
                _check_path(v, f"monai.bundle {command}: --{name}", problems)
            if name == "config_file":
                configs = values
    unknown = {k: v for k, v in flags.items() if k not in params}
    if unknown and not var_keyword:
        problems.extend(f"monai.bundle {command}: --{k} is not a parameter" for k in unknown)
    elif unknown:
        if "tracking" in flags:  # MONAI's tracking settings are config ids the CLI may override
            from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS

            params |= set(DEFAULT_MLFLOW_SETTINGS["configs"])
        _check_ids(unknown, params, config_ids(tuple(configs)), f"{configs}", problems)


def check_command(tokens: list[str], problems: list[str]) -> None:
    """Dispatches one command to its checks (see the module docstring)."""
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):
        tokens = tokens[1:]
    if not tokens:
        return
    if tokens[0] == "torchrun":
        if "-m" in tokens and tokens[tokens.index("-m") + 1] == "monai.bundle":
            check_monai_bundle(tokens[tokens.index("-m") + 2 :], problems)
        return
    if tokens[0] in ("python", "python3") and len(tokens) > 1:
        if tokens[1] == "-m" and len(tokens) > 2:
            if tokens[2] == "monai.bundle":
                check_monai_bundle(tokens[3:], problems)
            return
        if tokens[1].startswith("tools/"):
            check_tool(tokens[1:], problems)
            return
    for token in tokens[1:]:
        if token.startswith(REPO_PREFIXES):
            _check_path(token, f"{tokens[0]}: path", problems)


def _without_fences(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def anchors(text: str) -> set[str]:
    """The heading anchors of a Markdown text as GitHub makes them (lower case, punctuation dropped, spaces -> -)."""
    slugs = set()
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", _without_fences(text), flags=re.M):
        slugs.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return slugs


def check_links(path: Path, text: str | None = None) -> list[str]:
    """Local links of a Markdown file whose file, or heading anchor in a Markdown file, does not exist."""
    text = path.read_text() if text is None else text
    problems = []
    for m in _LINK.finditer(_without_fences(text)):
        target = m.group("target")
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = path.parent / file if file else path
        if not linked.exists():
            problems.append(f"link {target!r} does not exist (relative to {path.parent.relative_to(REPO)})")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(text if not file else linked.read_text()):
            problems.append(f"link {target!r}: no heading with the anchor #{anchor}")
    return problems


def check_page(path: Path, text: str | None = None) -> list[str]:
    """Every problem of one page: its commands and its links, each prefixed with the file and line."""
    text = path.read_text() if text is None else text
    problems = []
    for block in bash_blocks(path, text):
        for tokens in commands(block.text):
            found: list[str] = []
            check_command(tokens, found)
            problems.extend(f"{path.relative_to(REPO)}:{block.line}: {p}" for p in found)
    problems.extend(f"{path.relative_to(REPO)}: {p}" for p in check_links(path, text))
    return problems


@pytest.mark.parametrize("page", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_commands_and_links_of_page(page: Path) -> None:
    problems = check_page(page)
    assert not problems, "\n".join(problems)


def test_checker_finds_broken_commands_and_links() -> None:
    broken = "\n".join([
        "See [the guide](docs/no_such_page.md) and [ok](docs/reliability.md),",
        "and [here](docs/reliability.md#no-such-part).",
        "```bash",
        "python tools/no_such_tool.py",
        "python tools/make_datalist.py /data/ct --no_such_flag 3",
        "python tools/check_data.py",
        "python tools/pretrain.py bundles/rotation --overlays demo --no_such_id 3 && "
        "python tools/pretrain.py bundles/rotation --overlays nodemo",
        "python -m monai.bundle run \\",
        "  --config_file \"['bundles/rotation/configs/train.yaml','bundles/rotation/configs/stage9.yaml']\" \\",
        "  --bundle_root bundles/rotation --learning_rat 1e-3",
        "python -m monai.bundle verify_metadata --meta_fil bundles/rotation/configs/metadata.json",
        "python -m monai.bundle no_such_command",
        "python tools/benchmark_scaling.py no_such_command bundles/rotation",
        "python tools/benchmark_scaling.py measure bundles/rotation --no_such_flag 1",
        "```",
    ])  # fmt: skip
    problems = "\n".join(check_page(REPO / "README.md", broken))
    for fault in [
        "link 'docs/no_such_page.md' does not exist",
        "tools/no_such_tool.py does not exist",
        "tools/make_datalist.py: --no_such_flag is not a parameter",
        "tools/check_data.py: required argument 'datalist' missing",
        "--no_such_id is neither a parameter nor an id",
        "config 'bundles/rotation/configs/nodemo.yaml' does not exist",
        "--config_file 'bundles/rotation/configs/stage9.yaml' does not exist",
        "--learning_rat is neither a parameter nor an id",
        "--meta_fil is neither a parameter nor an id",
        "monai.bundle no_such_command: no such command",
        "link 'docs/reliability.md#no-such-part': no heading with the anchor #no-such-part",
        "tools/benchmark_scaling.py: the first argument must be one of the commands ['measure', 'sweep']",
        "--no_such_flag is neither a parameter nor an id of the configs of bundles/rotation",
    ]:
        assert fault in problems, f"not reported: {fault}\n{problems}"
    assert "'docs/reliability.md'" not in problems
    assert len(problems.splitlines()) == 13, problems


def test_checker_accepts_the_setup_commands() -> None:
    """The README's two set-up commands are the ones ``.ci/run`` runs, verbatim, and they pass the checks."""
    readme = (REPO / "README.md").read_text()
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    ci = [line for line in lines if line and not line.startswith(("#", "set ", "cd "))]
    blocks = [b.text.strip() for b in bash_blocks(REPO / "README.md", readme)]
    assert len(ci) == 2 and all(c in blocks for c in ci), (ci, blocks)


# ---- runnable blocks at smoke scale --------------------------------------------------------------------------------


def runnable_blocks() -> list[Block]:
    """The marked blocks: every bash block first (page by page), then the Python ones, which may use their outputs."""
    blocks = [b for f in doc_files() for b in fenced_blocks(f) if b.runnable]
    return sorted(blocks, key=lambda b: b.lang != "bash")


def smoke_command(tokens: list[str]) -> list[str]:
    """A documented command at smoke scale: the ``demo`` overlay becomes ``smoke`` (file or ``--overlays`` name)."""
    out = [token.replace("configs/demo.yaml", "configs/smoke.yaml") for token in tokens]
    if "--overlays" in out:
        i = out.index("--overlays") + 1
        out[i] = ",".join("smoke" if o == "demo" else o for o in out[i].split(","))
    return out


def run_in_process(tokens: list[str]) -> int:
    """Runs ``python tools/X.py ...`` or ``python -m module ...`` in this process (as ``__main__``, with its argv).

    In-process saves the interpreter start and the torch/MONAI imports per command; the tool's own ``fire.Fire`` parses
    the documented arguments exactly as on the command line. Returns the exit status.
    """
    assert tokens[0] in ("python", "python3") and len(tokens) > 1, f"not a python command: {tokens}"
    module = tokens[2] if tokens[1] == "-m" else None
    argv = [module, *tokens[3:]] if module else tokens[1:]
    saved = sys.argv, list(sys.path)
    sys.argv = argv
    try:
        if module:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv, sys.path[:] = saved
    return 0


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """A temporary copy of ``tools/`` and ``bundles/`` (without run outputs), phantom data and ``my_ct/``."""
    from common.data import write_phantom_dataset

    root = tmp_path_factory.mktemp("docs")
    ignore = shutil.ignore_patterns("models", "__pycache__", "eval", "*.pt")
    for name in ("tools", "bundles"):
        shutil.copytree(REPO / name, root / "repo" / name, ignore=ignore)
    data = os.path.dirname(write_phantom_dataset(root / "phantom", num_volumes=3))
    own = root / "repo" / "my_ct"
    own.mkdir()
    for f in (Path(data) / "images").iterdir():
        shutil.copy(f, own / f.name)
    return root / "repo", data


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """The root logger as it was: the bundles' ``setup_logging`` adds a file handler and console filters."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    filters = {h: list(h.filters) for h in handlers}
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
        handler.filters[:] = filters[handler]
    root.setLevel(level)


@pytest.mark.skipif(not runnable_blocks(), reason="no block is marked runnable")
def test_runnable_blocks_at_smoke_scale(sandbox, monkeypatch, capsys, restored_logging) -> None:
    cwd, data = sandbox
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("UNITED_SSL_DATA", data)
    ran = []
    try:
        _run_marked_blocks(ran, capsys)
    finally:  # the tools imported from the sandbox (plot_run ...) do not stay for later tests
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", None) or "").startswith(str(cwd)):
                del sys.modules[name]
    assert ran
    assert (cwd / "bundles/rotation/models/plots/losses.png").is_file()
    assert (cwd / "runs/my_ct/stage1/encoder.pt").is_file()


def _run_marked_blocks(ran: list[str], capsys: pytest.CaptureFixture) -> None:
    """Runs every marked block (see the module docstring), appending ``file:line: command`` to ``ran``."""
    for block in runnable_blocks():
        if block.lang == "python":
            where = f"{block.path.relative_to(REPO)}:{block.line}: python block"
            exec(compile(block.text, where, "exec"), {"__name__": "__docs__"})
            ran.append(where)
            continue
        for tokens in commands(block.text):
            where = f"{block.path.relative_to(REPO)}:{block.line}: {shlex.join(tokens)}"
            status = run_in_process(smoke_command(tokens))
            out = capsys.readouterr()
            assert status == 0, f"{where}\nexit {status}\n{out.out[-3000:]}\n{out.err[-3000:]}"
            ran.append(where)


def test_runner_reports_a_failing_command(tmp_path, monkeypatch, restored_logging) -> None:
    """A documented command that fails is seen as failing: the runner returns the tool's exit status."""
    monkeypatch.chdir(REPO)
    assert run_in_process(["python", "tools/check_data.py", str(tmp_path / "no_such_datalist.json")]) == 1
    assert run_in_process(["python", "tools/make_datalist.py", str(tmp_path / "no_such_folder")]) == 1
