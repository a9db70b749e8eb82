"""The installable packages a packaged bundle needs: ``required_packages_version`` of its metadata.

The model zoo's CI ``pip install``s ``<package>==<version>`` for every entry, so an entry must be a real distribution
(not this repository, whose code the package carries in ``scripts/``). The list is what the vendored code imports
(every ``import`` in it, read with ``ast``) plus what MONAI needs for the configs' own components (YAML configs need
PyYAML, ``TensorBoardStatsHandler`` needs tensorboard, the image readers need nibabel and itk, ``SwinUNETR`` needs
einops, ``python -m monai.bundle`` needs fire), mapped to the installed distributions and their versions. torch, monai and numpy have their own keys.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import sys
from collections.abc import Iterable, Mapping

__all__ = ["OWN_KEYS", "absent_modules", "allowed_distributions", "imported_modules", "missing_requirements", "required_packages", "write_site"]

#: Packages with their own metadata keys (monai_version, pytorch_version, numpy_version).
OWN_KEYS = {"torch", "monai", "numpy"}
#: Modules MONAI imports for a config component or file type (found by name in the config text).
CONFIG_MODULES = {
    r".": ("fire",),  # python -m monai.bundle (the commands the package documents)
    r"TensorBoard": ("tensorboard",),
    r"LoadImage": ("nibabel", "itk"),
    r"Swin": ("einops",),
}


def imported_modules(code_dir: str) -> set[str]:
    """Top-level names of every module imported anywhere in the ``.py`` files under ``code_dir``."""
    names: set[str] = set()
    for folder, _, files in os.walk(code_dir):
        for name in files:
            if not name.endswith(".py"):
                continue
            tree = ast.parse(open(os.path.join(folder, name), encoding="utf-8").read(), filename=name)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names


def _distributions(modules: Iterable[str], own_package: str) -> set[str]:
    mapping = importlib.metadata.packages_distributions()
    own = {d.lower() for d in mapping.get(own_package, [])}
    found = set()
    for module in modules:
        if module in sys.stdlib_module_names or module == own_package or module == "__future__":
            continue
        dists = mapping.get(module)
        if not dists:
            raise ModuleNotFoundError(f"the vendored code imports {module!r}, which no installed distribution provides.")
        found.update(_preferred(module, dists))
    return found - own - OWN_KEYS


def _preferred(module: str, dists: Iterable[str]) -> set[str]:
    """The distributions that bring ``module``: the one of the same name when installed (the ``itk`` meta-package,
    not its ``itk-core``, ``itk-io``... parts), else all of them."""
    try:
        importlib.metadata.version(module)
        return {module.lower()}
    except importlib.metadata.PackageNotFoundError:
        return {d.lower() for d in dists}


def required_packages(code_dir: str, configs: Mapping[str, str], own_package: str = "common") -> dict[str, str]:
    """``{distribution: installed version}`` of what the vendored code and the configs' components import.

    Args:
        code_dir: folder of the vendored package.
        configs: the packaged configs, text by file name (YAML files need PyYAML).
        own_package: the vendored package's name (its own distribution, e.g. this repository, is left out).
    """
    modules = imported_modules(code_dir)
    if any(name.endswith((".yaml", ".yml")) for name in configs):
        modules.add("yaml")
    text = "\n".join(configs.values())
    for pattern, extra in CONFIG_MODULES.items():
        if re.search(pattern, text):
            modules.update(extra)
    return {d: importlib.metadata.version(d) for d in sorted(_distributions(modules, own_package))}


def _normal(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def allowed_distributions(required: Iterable[str]) -> set[str]:
    """``required`` plus torch, monai and numpy, with everything they require (transitively, as ``pip install`` would
    bring it; extras left out), as normalised distribution names."""
    allowed: set[str] = set()
    pending = [_normal(d) for d in (*required, *OWN_KEYS)]
    while pending:
        dist = pending.pop()
        if dist in allowed:
            continue
        allowed.add(dist)
        try:
            requires = importlib.metadata.requires(dist) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        pending += [_normal(re.split(r"[\s;<>=!~\[(]", line, maxsplit=1)[0]) for line in requires if "extra ==" not in line]
    return allowed


def absent_modules(required: Iterable[str], own_package: str = "common") -> set[str]:
    """Top-level modules installed here that a machine with only ``required`` (and what it brings) would lack."""
    allowed = allowed_distributions(required)
    return {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if module not in sys.stdlib_module_names and module != own_package and not any(_normal(d) in allowed for d in dists)
    }


def missing_requirements(loaded: Iterable[str], required: Mapping[str, str], own_package: str = "common") -> list[str]:
    """``"<distribution> (module <name>)"`` for each of the ``loaded`` top-level modules that only a distribution outside
    :func:`allowed_distributions` provides."""
    absent = absent_modules(required, own_package)
    mapping = importlib.metadata.packages_distributions()
    return sorted(f"{d} (module {m})" for m in set(loaded) & absent for d in mapping.get(m, []))


def write_site(required: Iterable[str], target: str) -> str:
    """A folder of links to the installed files of :func:`allowed_distributions` only, for ``PYTHONPATH`` with
    ``python -S``: a machine with just these distributions (no ``.pth`` files run, so no editable install either).

    Returns:
        ``target``.
    """
    os.makedirs(target, exist_ok=True)
    allowed = allowed_distributions(required)
    for dist in importlib.metadata.distributions():
        if _normal(dist.metadata["Name"]) not in allowed:
            continue
        tops = {f.parts[0] for f in (dist.files or []) if f.parts and f.parts[0] not in ("..", "")}
        for top in tops:
            source = os.path.join(str(dist.locate_file("")), top)
            link = os.path.join(target, top)
            if top.endswith(".pth") or not os.path.exists(source) or os.path.lexists(link):
                continue
            os.symlink(source, link)
    return target
