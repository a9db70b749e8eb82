"""Make a bundle's configs use the copy of ``common`` it carries (``<bundle>/scripts/common``), from any directory.

Why the configs are rewritten rather than the path set up front: MONAI evaluates every ``$import ...`` statement of
a config before the first id is resolved, and binds a failed import to a stub that raises on every later use, while
``python -m monai.bundle run`` puts the bundle folder on ``sys.path`` only *after* ``initialize`` (and
``verify_net_in_out`` / ``ckpt_export`` never do). So a packaged config imports nothing from ``common`` by statement.
One id does it instead::

    code_dir: <bundle_root>/scripts (an error naming --bundle_root when it has no common/ package)
    common:   puts code_dir first on sys.path, imports the package and its sub-packages the expressions use

and every use refers to that id, so MONAI resolves it first: an expression ``$common.data.f(@x)`` becomes
``$@common.data.f(@x)``, a component ``_target_: common.networks.X`` gets ``_requires_: "@common"``, and an import
statement of ``common`` outside ``imports`` becomes ``$@common.<module>``. This holds for ``monai.bundle run`` from
any working directory (with ``--bundle_root``), for the tools that instantiate ``network_def`` directly, and for MONAI
Label (which sets ``bundle_root`` and reads ids one by one).

The rewrite is done on the text, so comments survive, and checked against the same rewrite done on the parsed
structure: a layout the text rewrite does not handle (e.g. a flow-style ``{_target_: common.x}``) is an error that
names the file, not a silently different config.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["PACKAGE", "CODE_DIR", "vendor_structure", "vendor_text", "code_ids", "subpackages", "uses_code"]

PACKAGE = "common"
CODE_DIR = "scripts"
REQUIRES = "@common"
LOADER = "$from importlib import import_module as load_module"

_EXPR_REF = re.compile(r"(?<![\w.@'\"])common\.")
_IMPORT = re.compile(r"\$\s*import\s+(common(?:\.\w+)*)\s*$")
_FROM = re.compile(r"\$\s*from\s+common\b")
_SUBPACKAGE = re.compile(r"(?<![\w.@'\"])@?common\.(\w+)")
_TARGET_LINE = re.compile(r"^(\s*)(- )?_target_:\s*[\"']?common\.")
_TOP_KEY = re.compile(r"^[^\s#-]")


def _is_import_of_package(value: str) -> re.Match | None:
    return _IMPORT.fullmatch(value.strip())


def _rewrite_expression(value: str, where: str) -> str:
    if _FROM.match(value.strip()):
        raise ValueError(f"{where}: {value!r}: `from common... import` binds a bare name that a packaged bundle cannot provide; use `$import common.<module>` and `common.<module>.<name>` in expressions.")
    match = _is_import_of_package(value)
    if match:
        return "$@" + match.group(1)
    return _EXPR_REF.sub("@common.", value)


def vendor_structure(config: Any, where: str = "config", _top: bool = True) -> Any:
    """The rewrite on a parsed config (see the module docstring); ``imports`` entries of ``common`` are dropped."""
    if isinstance(config, dict):
        out = {}
        for key, value in config.items():
            if _top and key == "imports" and isinstance(value, list):
                out[key] = [v for v in value if not (isinstance(v, str) and _is_import_of_package(v))]
                continue
            out[key] = vendor_structure(value, where, False)
        target = out.get("_target_")
        if isinstance(target, str) and target.startswith(PACKAGE + "."):
            if "_requires_" in out:
                raise ValueError(f"{where}: component {target} already has `_requires_`; the packaging cannot add '@common' to it.")
            out["_requires_"] = REQUIRES
        return out
    if isinstance(config, list):
        return [vendor_structure(v, where, False) for v in config]
    if isinstance(config, str) and config.startswith("$"):
        return _rewrite_expression(config, where)
    return config


def _split_comment(line: str) -> tuple[str, str]:
    """``line`` as (content, comment), the comment being a ``#`` outside quotes after whitespace (or at column 0)."""
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i], line[i:]
        i += 1
    return line, ""


def _rewrite_scalars(content: str, where: str) -> str:
    """Rewrite the ``$`` expressions of one line's content (quoted or plain scalars)."""

    def quoted(match: re.Match) -> str:
        quote, body = match.group(1), match.group(2)
        return quote + _rewrite_expression(body, where) + quote if body.startswith("$") else match.group(0)

    if re.search(r"[\"']\$", content):
        return re.sub(r"([\"'])(\$.*?)\1", quoted, content)
    plain = re.match(r"^(\s*(?:- )?(?:[^\s:]+:\s+)?)(\$.*?)(\s*)$", content)
    if plain:
        return plain.group(1) + _rewrite_expression(plain.group(2), where) + plain.group(3)
    return content


def uses_code(text: str) -> bool:
    """Whether a config text refers to the ``common`` package at all."""
    return bool(_SUBPACKAGE.search(text) or re.search(r"import\s+common\b", text))


def subpackages(texts: list[str]) -> list[str]:
    """Sorted ``common.<name>`` modules the expressions of ``texts`` use (``_target_`` paths import themselves)."""
    names = set()
    for text in texts:
        for line in text.splitlines():
            content, _ = _split_comment(line)
            if "$" in content:
                names.update(_SUBPACKAGE.findall(content))
                names.update(m.split(".")[1] for m in re.findall(r"import\s+(common\.\w+)", content))
    return sorted(names)


def code_ids(modules: list[str]) -> list[str]:
    """The packaged ids ``code_dir`` and ``common`` (YAML lines), importing ``common`` and ``common.<modules>``."""
    imported = ", ".join(repr(f"{PACKAGE}.{m}") for m in modules)
    return [
        "# ------------------------------------------------------------------------------------------ packaged code",
        "# Written by tools/package_bundle.py. This bundle carries the code it imports: scripts/common. `common` puts",
        "# <bundle_root>/scripts first on sys.path and imports that package; expressions use it as @common.<module> and",
        "# its components require it, so it loads from any working directory, before `initialize` too. Pass",
        "# --bundle_root <this bundle's folder> (MONAI Label sets it).",
        "code_dir: \"$os.path.join(os.path.abspath(@bundle_root), 'scripts') if os.path.isfile(os.path.join(@bundle_root, "
        "'scripts', 'common', '__init__.py')) else (_ for _ in ()).throw(FileNotFoundError('bundle_root ' + "
        "os.path.abspath(@bundle_root) + ' has no scripts/common/: pass --bundle_root <the packaged bundle folder>'))\"",
        "# (load_module is importlib.import_module: MONAI parses an expression containing 'import' as an import statement)",
        "common: \"$(None if @code_dir in sys.path else sys.path.insert(0, @code_dir), [load_module(m) for m in "
        f"['{PACKAGE}', {imported}]], sys.modules['{PACKAGE}'])[-1]\"",
        "",
    ]


def vendor_text(text: str, where: str, define: bool, modules: list[str]) -> str:
    """Rewrite one YAML config's text (comments kept); ``define`` adds the ``code_dir``/``common`` ids and the
    ``sys``/``load_module`` imports after its ``imports`` block.

    Raises:
        ValueError: the text rewrite and the structural one disagree (the message names the file), or the file has
            no ``imports`` block to extend while ``define`` is set.
    """
    out: list[str] = []
    in_imports = False
    imports_end = None
    for line in text.splitlines():
        if _TOP_KEY.match(line):
            if in_imports:
                imports_end = len(out)
            in_imports = line.startswith("imports:")
        content, comment = _split_comment(line)
        if in_imports and re.fullmatch(r"\s*-\s*[\"']?\$\s*import\s+common(\.\w+)*[\"']?\s*", content):
            continue
        target = _TARGET_LINE.match(line)
        if target:
            out.append(line)
            indent = len(target.group(1)) + (2 if target.group(2) else 0)
            out.append(" " * indent + f'_requires_: "{REQUIRES}"           # packaged: scripts/ on sys.path first')
            continue
        out.append(_rewrite_scalars(content, where) + comment if "$" in content else line)
    if in_imports and imports_end is None:
        imports_end = len(out)
    expected = vendor_structure(yaml.safe_load(text), where)
    if define:
        if imports_end is None:
            raise ValueError(f"{where}: a config that defines the packaged `common` id needs a top-level `imports` list.")
        out[imports_end:imports_end] = ["  - $import sys", f"  - {LOADER}", "", *code_ids(modules)]
        expected["imports"] = expected["imports"] + ["$import sys", LOADER]
        code = yaml.safe_load("\n".join(code_ids(modules)))
        expected.update(code)
    new_text = "\n".join(out) + "\n"
    if yaml.safe_load(new_text) != expected:
        raise ValueError(
            f"{where}: rewriting the text for the vendored code gave another config than rewriting its structure "
            "(a flow-style `{_target_: common...}` or a multi-line expression?); write that id in block style."
        )
    return new_text
