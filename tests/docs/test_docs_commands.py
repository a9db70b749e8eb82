"""Every command and every local link in the documentation works as written, and every bash block is marked.

The documentation is ``README.md``, ``docs/*.md`` and ``bundles/*/docs/README.md``. From each file this test takes
every fenced ``bash`` block and splits it into commands (continuation lines joined, comments dropped, ``&&``,
``;`` and ``|`` separating commands; :mod:`docs_markdown`), then:

* **checks every bash block's marker**: the line before its fence must be ``<!-- docs-test: run -->`` (the block runs
  at smoke scale in ``test_docs_runnable.py``) or ``<!-- docs-test: not run: <reason> -->`` (it cannot run here: a
  multi-node launch, a server, a paper-scale GPU run ...), so no command escapes silently; a malformed marker or one
  not right before a fence fails too;
* **checks every command statically**: ``python tools/X.py`` must name an existing tool, and every flag must be a
  parameter of the function the tool hands to ``fire.Fire`` (read from the tool's source); required parameters must
  be given. Where that function takes bundle overrides (``tools/pretrain.py``), every other flag must be an id of
  the bundle's configs. ``python -m monai.bundle <command>`` (also under ``torchrun``) must name a MONAI bundle
  command whose signature takes the flags; the files of ``--config_file``, ``--meta_file``, ``--bundle_root`` ...
  must exist, and every override must be an id of those configs (MONAI would otherwise add an unused id
  silently). Any other repository path a command names (``bundles/...``, ``tools/...``, ``docs/...``) must exist,
  except what runs write (``models/``, ``eval/``, ``runs/``, ``plots/``).
* **checks every local link** (``[text](path)``, images included) resolves to an existing file or folder.

``test_checker_finds_broken_commands_and_links`` feeds the checker a deliberately broken page and asserts it
reports each fault, so the checks above can fail.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml
from docs_markdown import REPO, bash_blocks, commands, doc_files, marker_problems

#: Path prefixes a command may name that must exist in the repository.
REPO_PREFIXES = ("bundles/", "tools/", "docs/", "common/", "tests/")
#: Path parts that runs write (a command may name them before they exist).
RUN_OUTPUTS = ("/models/", "/models", "/eval/", "runs/", "/plots")
#: ``monai.bundle run`` parameters whose values are files or folders that must exist.
FILE_FLAGS = ("config_file", "meta_file", "logging_file", "bundle_root", "args_file", "filepath", "ckpt_file")
#: Flags of ``monai.bundle`` commands that write their value (not checked for existence).
OUTPUT_FLAGS = {"ckpt_export": ("filepath",)}

_LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


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
    """Every problem of one page: its markers, its commands and its links, each prefixed with the file and line."""
    text = path.read_text() if text is None else text
    problems = marker_problems(path, text)
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
        "<!-- docs-test: run -->",
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
        "<!-- docs-test: not run: a server -->",
        "```bash",
        "tensorboard --logdir runs",
        "```",
        "```bash",
        "python tools/plot_run.py runs/unmarked",
        "```",
        "<!-- docs-test: not run: -->",
        "```bash",
        "python tools/plot_run.py runs/no_reason",
        "```",
        "<!-- docs-test: skip -->",
        "```bash",
        "python tools/plot_run.py runs/unknown_marker",
        "```",
        "<!-- docs-test: run -->",
        "",
        "```bash",
        "python tools/plot_run.py runs/detached_marker",
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
        "README.md:21: bash block marked neither <!-- docs-test: run --> nor <!-- docs-test: not run: <reason> -->",
        "README.md:25: marker <!-- docs-test: not run: --> is neither 'run' nor 'not run: <reason>'",
        "README.md:29: marker <!-- docs-test: skip --> is neither 'run' nor 'not run: <reason>'",
        "README.md:34: bash block marked neither",  # the marker two lines up is not attached to it
        "README.md: 1 docs-test marker(s) not on the line right before a bash or python fence (marker lines [32])",
    ]:
        assert fault in problems, f"not reported: {fault}\n{problems}"
    assert "'docs/reliability.md'" not in problems
    assert "README.md:18" not in problems and "README.md:4: bash block" not in problems  # the marked blocks are fine
    assert len(problems.splitlines()) == 18, problems


def test_checker_accepts_the_setup_commands() -> None:
    """The README's two set-up commands are the ones ``.ci/run`` runs, verbatim, and they pass the checks."""
    readme = (REPO / "README.md").read_text()
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    ci = [line for line in lines if line and not line.startswith(("#", "set ", "cd "))]
    blocks = [b.text.strip() for b in bash_blocks(REPO / "README.md", readme)]
    assert len(ci) == 2 and all(c in blocks for c in ci), (ci, blocks)
