"""The documented commands run: every block marked ``<!-- docs-test: run -->`` runs at smoke scale, page by page.

One test per page (``test_runnable_blocks_of_page[<page>]``) runs the page's marked ``bash`` and ``python`` blocks in
the page's order, in a temporary copy of ``tools/`` and ``bundles/`` (the sandbox, shared by the module's tests), with
``UNITED_SSL_DATA`` pointing at a phantom dataset (:func:`common.data.write_phantom_dataset`: three 48 x 48 x 40
volumes with organ and bone labels). Every command is rewritten to smoke scale by the explicit rules of
:mod:`docs_smoke` (demo -> smoke overlay, paper-scale commands get the smoke overlay, the smoke overlay's ids win,
weights are read at the smoke width, benchmark loop counts capped, the phantom's label set for the transfer bundles,
``torchrun`` with 2 gloo processes) and must exit 0; every Python block must run without error.

The own-data examples' paths are sandbox folders, laid out afresh before each page (the table :data:`PATH_MAP` of
:mod:`docs_smoke` maps ``/data`` to ``data/``):

* ``data/ct/``, ``my_ct/``: the phantom volumes without a datalist (``make_datalist.py`` writes one);
* ``data/my_datalist.json`` with ``data/images/``, ``data/labels/``; ``data/ct_folder/``, ``my_data/``: the phantom
  dataset with its datalist;
* for ``bundles/dira_2d/docs/README.md`` (:data:`PAGE_SETUP`): the phantom's 2D slices where the sample data's would be
  (``$UNITED_SSL_DATA/slices_2d``, what ``python tools/sample_data.py --slices_2d`` writes for the sample CT) and in
  ``data/cxr/``, and ``data/ct/`` with a datalist;
* ``.cache/sample_data/images/ct_upper_abdomen.nii.gz`` (the transfer bundles' inference example) is a copy of the
  validation phantom in ``$UNITED_SSL_DATA/images/``.

A page that reads what another page's commands write names it in :data:`PAGE_NEEDS` (the transfer pages fine-tune the
quickstart's Rotation stages); that page runs first, once per session. :data:`RUN_LAST` names the few blocks that
read what later blocks of their own page write.

**Cost.** By default the docs pages (``README.md``, ``docs/*.md``) except :data:`HEAVY_PAGES` run, and the READMEs of
a representative subset of bundles (:data:`DEFAULT_BUNDLES`: the 2D one, the transformer and a transfer bundle; the
quickstart, README and FAQ run Rotation's commands, whose README blocks every other 3D method's README repeats with
its own name). ``UNITED_SSL_ALL_BUNDLES=1`` runs every page, as in ``tests/tools/test_package_bundle.py``: the
benchmark page takes minutes, the refs page pretrains three bundles, every bundle README up to a minute.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from docs_markdown import REPO, Block, commands, doc_files, fenced_blocks
from docs_smoke import ERROR_ROW_TOOLS, run_command, run_in_process, smoke_command

EVERY_PAGE = os.environ.get("UNITED_SSL_ALL_BUNDLES") == "1"
#: Bundles whose README runs by default (the others with UNITED_SSL_ALL_BUNDLES=1).
DEFAULT_BUNDLES = ("dira_2d", "swin_unetr", "transfer_segmentation")
#: Docs pages that run only with UNITED_SSL_ALL_BUNDLES=1 (each takes minutes even at smoke scale).
HEAVY_PAGES: tuple[str, ...] = ("docs/performance.md", "docs/refs.md")
#: page -> pages whose commands write what it reads (run first, once per session).
PAGE_NEEDS: dict[str, tuple[str, ...]] = {
    "docs/faq.md": ("docs/quickstart.md",),  # the Python block reads bundles/rotation/models/stage3
    "docs/multi_gpu.md": ("docs/quickstart.md",),  # stage 2 starts from stage 1
    "docs/transfer.md": ("docs/quickstart.md",),  # fine-tunes Rotation's stages 1 and 3
    "docs/monai_label.md": ("docs/quickstart.md", "docs/transfer.md"),  # packages Rotation's and the segmentation's
    "bundles/transfer_segmentation/docs/README.md": ("docs/quickstart.md",),
    "bundles/transfer_classification/docs/README.md": ("docs/quickstart.md",),
}
#: (page, text of a command in the block): blocks that run after the page's other blocks, which write what they read.
RUN_LAST: tuple[tuple[str, str], ...] = (
    ("bundles/swin_unetr/docs/README.md", "--pretrained_bundle bundles/swin_unetr"),  # fine-tunes the stages below
)
#: (page, command text) -> the known bug: the command must FAIL until it is fixed (then this entry must go).
KNOWN_FAILING: dict[tuple[str, str], str] = {}
#: page -> files (relative to the sandbox) its commands must have written.
PAGE_WRITES: dict[str, tuple[str, ...]] = {
    "docs/quickstart.md": ("bundles/rotation/models/plots/losses.png", "runs/my_ct/stage1/encoder.pt"),
    "docs/monai_label.md": ("dist/rotation_ct_ssl/models/model.pt", "dist/liver_ct_segmentation/models/model.pt"),
    "docs/transfer.md": ("bundles/transfer_segmentation/models/model.pt", "bundles/transfer_classification/models/model.pt"),
}  # fmt: skip


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _slices(out: Path, datalist: str) -> None:
    from common.data.slices import write_slice_dataset

    if not (out / "datalist.json").is_file():
        write_slice_dataset(datalist, out)


def _dira_setup(repo: Path, data: str) -> None:
    """The phantom's 2D slices where the sample data's would be and in ``data/cxr``; ``data/ct`` with a datalist."""
    _slices(Path(data) / "slices_2d", os.path.join(data, "datalist.json"))
    _slices(repo / "data" / "cxr", os.path.join(data, "datalist.json"))
    shutil.rmtree(repo / "data" / "ct")
    _copy_dataset(Path(data), repo / "data" / "ct")


#: page -> what it needs beyond the common layout (see the module docstring).
PAGE_SETUP: dict[str, Callable[[Path, str], None]] = {"bundles/dira_2d/docs/README.md": _dira_setup}


def runnable_pages() -> list[str]:
    """Pages with a marked block, in an order where every page comes after the pages it needs."""
    pages = [_rel(f) for f in doc_files() if any(b.runnable for b in fenced_blocks(f))]

    def depth(page: str) -> int:
        return max((1 + depth(n) for n in PAGE_NEEDS.get(page, ())), default=0)

    return sorted(pages, key=depth)  # stable: README, docs/*, bundles/* within a depth


def _selected(page: str) -> bool:
    if EVERY_PAGE:
        return True
    if page.startswith("bundles/"):
        return page.split("/")[1] in DEFAULT_BUNDLES
    return page not in HEAVY_PAGES


def page_param(page: str):
    marks = () if _selected(page) else pytest.mark.skip(reason="runs with UNITED_SSL_ALL_BUNDLES=1 (docstring: Cost)")
    return pytest.param(page, marks=marks, id=page)


def _copy_dataset(src: Path, dst: Path, datalist_name: str = "datalist.json") -> None:
    for sub in ("images", "labels"):
        shutil.copytree(src / sub, dst / sub, ignore=shutil.ignore_patterns("ct_upper_abdomen*"))
    shutil.copy(src / "datalist.json", dst / datalist_name)


def _volumes_only(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for f in sorted((src / "images").glob("phantom_*.nii.gz")):
        shutil.copy(f, dst / f.name)


class Sandbox:
    """The temporary repository copy the commands run in, its phantom data, and the pages that ran in it."""

    def __init__(self, repo: Path, data: str, pristine: Path) -> None:
        self.repo, self.data, self.pristine = repo, data, pristine
        self.snapshots = repo.parent / "snapshots"  # page -> its bundles/*/models
        self.ran: list[str] = []

    def lay_out_data(self, page: str) -> None:
        """No run outputs but those of the pages it needs, the own-data folders afresh, then the page's set-up."""
        for folder in [*self.repo.glob("bundles/*/models"), *self.repo.glob("bundles/*/eval")]:
            shutil.rmtree(folder)
        for name in ("data", "my_ct", "my_data", "tmp", "runs", "dist", "results"):
            shutil.rmtree(self.repo / name, ignore_errors=True)
        for need in PAGE_NEEDS.get(page, ()):  # what the pages it needs wrote into the bundles
            shutil.copytree(self.snapshots / need, self.repo / "bundles", dirs_exist_ok=True)
        _volumes_only(self.pristine, self.repo / "data" / "ct")
        _volumes_only(self.pristine, self.repo / "my_ct")
        _copy_dataset(self.pristine, self.repo / "data", "my_datalist.json")
        _copy_dataset(self.pristine, self.repo / "data" / "ct_folder")
        _copy_dataset(self.pristine, self.repo / "my_data")
        if page in PAGE_SETUP:
            PAGE_SETUP[page](self.repo, self.data)

    def run_page(self, page: str, capsys: pytest.CaptureFixture) -> None:
        """Runs the page's marked blocks once per sandbox, after the pages it needs, from their outputs only.

        Each page starts without run outputs (a bundle refuses to resume another run's stage, so two pages' runs
        of one bundle would clash) except what the pages it needs wrote into ``bundles/*/models`` (kept after each
        page in a snapshot).
        """
        for need in PAGE_NEEDS.get(page, ()):
            self.run_page(need, capsys)
        if page in self.ran:
            return
        self.lay_out_data(page)
        blocks = [b for b in fenced_blocks(REPO / page) if b.runnable]
        last = [b for b in blocks if any(p == page and text in b.text for p, text in RUN_LAST)]
        for block in [b for b in blocks if b not in last] + last:
            run_block(block, self.data, capsys)
        missing = [f for f in PAGE_WRITES.get(page, ()) if not (self.repo / f).is_file()]
        assert not missing, f"{page}: its commands did not write {missing}"
        for models in self.repo.glob("bundles/*/models"):
            shutil.copytree(models, self.snapshots / page / models.relative_to(self.repo / "bundles"))
        self.ran.append(page)


def run_block(block: Block, data: str, capsys: pytest.CaptureFixture) -> None:
    """Runs one marked block: a Python block in a fresh namespace, a bash block command by command at smoke scale."""
    if block.lang == "python":
        exec(compile(block.text, f"{block.where}: python block", "exec"), {"__name__": "__docs__"})  # noqa: S102
        return
    page = _rel(block.path)
    for tokens in commands(block.text):
        smoke = smoke_command(tokens, data)
        where = f"{block.where}: {shlex.join(tokens)}\nran as: {shlex.join(smoke)}"
        status, output = run_command(smoke)
        out = capsys.readouterr()
        text = output + out.out + out.err
        bug = next((why for (p, t), why in KNOWN_FAILING.items() if p == page and t in shlex.join(tokens)), None)
        if bug:
            assert status != 0, f"{where}\nexits 0 now: remove its KNOWN_FAILING entry ({bug})"
            continue
        assert status == 0, f"{where}\nexit {status}\n{text[-4000:]}"
        if any(t in ERROR_ROW_TOOLS for t in smoke):
            assert '"error": ' not in text, f"{where}\na measurement failed:\n{text[-4000:]}"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Sandbox:
    """A temporary copy of ``tools/``, ``bundles/`` (without run outputs), ``common/`` and the phantom dataset."""
    from common.data import write_phantom_dataset

    root = tmp_path_factory.mktemp("docs")
    ignore = shutil.ignore_patterns("models", "__pycache__", "eval", "*.pt")
    for name in ("tools", "bundles", "common"):  # common: what tools/package_bundle.py vendors
        shutil.copytree(REPO / name, root / "repo" / name, ignore=ignore)
    pristine = Path(os.path.dirname(write_phantom_dataset(root / "pristine", num_volumes=3)))
    data = root / "phantom"
    _copy_dataset(pristine, data)
    shutil.copy(pristine / "images" / "phantom_002.nii.gz", data / "images" / "ct_upper_abdomen.nii.gz")
    return Sandbox(root / "repo", str(data), pristine)


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


@pytest.mark.parametrize("page", [page_param(p) for p in runnable_pages()])
def test_runnable_blocks_of_page(page: str, sandbox: Sandbox, monkeypatch, capsys, restored_logging) -> None:
    monkeypatch.chdir(sandbox.repo)
    monkeypatch.setenv("UNITED_SSL_DATA", sandbox.data)
    try:
        sandbox.run_page(page, capsys)
    finally:  # the tools imported from the sandbox (plot_run ...) do not stay for later tests
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", None) or "").startswith(str(sandbox.repo)):
                del sys.modules[name]
    assert page in sandbox.ran


def test_every_page_with_a_runnable_block_is_a_test() -> None:
    """The parametrisation covers every page with a marked block, and the tables name existing pages and bundles."""
    pages = {_rel(f) for f in doc_files()}
    assert set(runnable_pages()) == {p for p in pages if any(b.runnable for b in fenced_blocks(REPO / p))}
    named = set(PAGE_NEEDS) | {n for needs in PAGE_NEEDS.values() for n in needs} | set(PAGE_SETUP) | set(PAGE_WRITES)
    assert named <= pages, named - pages
    assert all((REPO / "bundles" / b / "docs" / "README.md").is_file() for b in DEFAULT_BUNDLES)
    for page, text in [*RUN_LAST, *KNOWN_FAILING]:
        assert any(b.runnable and text in b.text for b in fenced_blocks(REPO / page)), (page, text)
    order = runnable_pages()
    assert all(order.index(n) < order.index(p) for p, needs in PAGE_NEEDS.items() for n in needs if p in order)


def test_runner_reports_a_failing_command(tmp_path, monkeypatch, restored_logging) -> None:
    """A documented command that fails is seen as failing: the runner returns the tool's exit status."""
    monkeypatch.chdir(REPO)
    assert run_in_process(["python", "tools/check_data.py", str(tmp_path / "no_such_datalist.json")]) == 1
    assert run_in_process(["python", "tools/make_datalist.py", str(tmp_path / "no_such_folder")]) == 1
    assert run_in_process(["python", "-c", "import sys; sys.exit(3)"]) == 3
    assert run_command(
        ["X_DOCS=1", "python", "-c", "import os, sys; sys.exit(0 if os.environ['X_DOCS'] == '1' else 4)"]
    ) == (0, "")
    assert "X_DOCS" not in os.environ
    status, output = run_command(
        ["torchrun", "--standalone", "--nnodes=1", "--nproc_per_node=2", "-m", "no_such_module_docs"]
    )
    assert status != 0 and "no_such_module_docs" in output
    with pytest.raises(AssertionError, match="no smoke runner for 'tensorboard'"):
        run_command(["tensorboard", "--logdir", "runs"])


def _same(command: str, expected: str) -> bool:
    """``command`` at smoke scale has the tokens of ``expected`` (``/phantom``: the phantom dataset; ``*``: a hash)."""
    smoke = [
        re.sub(r"^runs/separate_[0-9a-f]{8}$", "runs/separate_*", t)
        for t in smoke_command(shlex.split(command), "/phantom")
    ]
    return smoke == shlex.split(expected)


def test_smoke_rules(monkeypatch) -> None:
    """Each rule of :mod:`docs_smoke` on a documented command, written out by hand."""
    monkeypatch.chdir(REPO)
    rot = "bundles/rotation/configs"
    # paths, and a paper-scale pretraining gets the smoke overlay
    assert _same(
        "python tools/pretrain.py bundles/rotation --dataset_dir /data/ct --output_dir runs/my_ct",
        "python tools/pretrain.py bundles/rotation --dataset_dir data/ct --output_dir runs/my_ct --overlays smoke",
    )
    # demo -> smoke; the smoke overlay's ids win over the documented ones, other flags stay
    assert _same(
        "python tools/pretrain.py bundles/rotation --overlays demo,refs --max_epochs 30 --val_interval 10 "
        "--roi_size '[32,32,8]'",
        "python tools/pretrain.py bundles/rotation --overlays smoke,refs --max_epochs 1 --val_interval 10 "
        "--roi_size '[32, 32, 32]' --output_dir 'runs/separate_*'",
    )
    # torchrun: 2 processes, smoke.yaml after the stage overlay and before the multi-GPU one
    assert _same(
        "torchrun --standalone --nnodes=1 --nproc_per_node=4 -m monai.bundle run --config_file "
        f"\"['{rot}/train.yaml','{rot}/stage2.yaml','{rot}/multi_gpu_train.yaml']\" --bundle_root bundles/rotation",
        "torchrun --standalone --nnodes=1 --nproc_per_node=2 -m monai.bundle run --config_file "
        f"\"['{rot}/train.yaml', '{rot}/stage2.yaml', '{rot}/smoke.yaml', '{rot}/multi_gpu_train.yaml']\" "
        "--bundle_root bundles/rotation",
    )
    # weights read through inference.yaml: every id smoke.yaml and inference.yaml share, at the smoke value
    assert _same(
        f"python -m monai.bundle run --config_file {rot}/inference.yaml --bundle_root bundles/rotation "
        "--base_channels 8 --roi_size '[32,32,8]' --spacing '[6.0,6.0,4.0]'",
        f"python -m monai.bundle run --config_file {rot}/inference.yaml --bundle_root bundles/rotation "
        "--base_channels 4 --roi_size '[32, 32, 32]' --spacing '[6.0,6.0,4.0]'",
    )
    swin = shlex.join(
        smoke_command(
            shlex.split(
                "python -m monai.bundle ckpt_export --net_id network_def --bundle_root bundles/swin_unetr "
                "--config_file bundles/swin_unetr/configs/inference.yaml --feature_size 12 --window_size 4"
            ),
            "/phantom",
        )
    )
    assert "--depths '[1, 1, 1, 1]' --num_heads '[1, 2, 4, 8]'" in swin and "--feature_size 12 --window_size 4" in swin
    # the transfer bundles: the phantom task where the configs have the ids, the sample image is a phantom
    assert _same(
        "python -m monai.bundle run --config_file bundles/transfer_classification/configs/inference.yaml "
        "--bundle_root bundles/transfer_classification --image_path .cache/sample_data/images/ct_upper_abdomen.nii.gz",
        "python -m monai.bundle run --config_file bundles/transfer_classification/configs/inference.yaml "
        "--bundle_root bundles/transfer_classification --image_path /phantom/images/ct_upper_abdomen.nii.gz "
        "--roi_size '[16, 16, 16]' --class_names \"['organ','bone']\"",
    )
    # benchmark loop counts capped, the environment kept; paths inside Python code mapped
    assert _same(
        "OMP_NUM_THREADS=1 python tools/benchmark.py bundles/jigsaw --stages 1 --overlays demo --iterations 4 "
        "--warmup 1 --chunk 2",
        "OMP_NUM_THREADS=1 python tools/benchmark.py bundles/jigsaw --stages 1 --overlays smoke --iterations 2 "
        "--warmup 1 --chunk 1",
    )
    assert _same(
        "python -c \"f('/data/ct/datalist.json', 'bundles/data/x')\"",
        "python -c \"f('data/ct/datalist.json', 'bundles/data/x')\"",
    )
    assert _same(
        "python tools/compare_stepwise_joint.py bundles/rotation --scale demo --epochs 'stage1=30,joint=12'",
        "python tools/compare_stepwise_joint.py bundles/rotation --scale smoke --epochs stage1=1,joint=1 "
        "--profile phantom --datalist /phantom/datalist.json",
    )
    assert _same(
        "python tools/pretrain.py bundles/transvw --datalist /data/ct_folder/visual_words.json",
        "python tools/pretrain.py bundles/transvw --datalist data/ct_folder/visual_words_smoke.json --overlays smoke "
        "--output_dir 'runs/separate_*'",
    )
