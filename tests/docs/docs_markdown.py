"""The documentation's fenced blocks, their ``docs-test`` markers and their commands (shared by the docs tests).

The documentation is ``README.md``, ``docs/*.md`` and ``bundles/*/docs/README.md``. The line right before a fence may
carry a marker: ``<!-- docs-test: run -->`` (the block runs at smoke scale, ``test_docs_runnable.py``) or
``<!-- docs-test: not run: <reason> -->`` (it cannot run here, and the reason says why). Every ``bash`` block must
carry one of the two (``test_docs_commands.py`` fails otherwise), so no command escapes silently.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN = "run"
NOT_RUN = "not run:"
MARKER = re.compile(r"<!-- docs-test: (?P<marker>.*?) -->")
_FENCE = re.compile(
    r"^(?:<!-- docs-test: (?P<marker>.*?) -->\n)?```(?P<lang>bash|python)\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL
)


@dataclass(frozen=True)
class Block:
    """One fenced block: the file, the line of its fence, its text, its ``docs-test`` marker text (or ``None``)."""

    path: Path
    line: int
    text: str
    marker: str | None = None
    lang: str = "bash"

    @property
    def runnable(self) -> bool:
        """Marked ``<!-- docs-test: run -->``."""
        return self.marker == RUN

    @property
    def not_run_reason(self) -> str:
        """The reason of a ``<!-- docs-test: not run: <reason> -->`` marker, else ``""``."""
        if self.marker and self.marker.startswith(NOT_RUN):
            return self.marker[len(NOT_RUN) :].strip()
        return ""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def doc_files() -> list[Path]:
    """The documentation files, README first."""
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(REPO.glob("bundles/*/docs/README.md"))]
    return [f for f in files if f.is_file()]


def fenced_blocks(path: Path, text: str | None = None) -> list[Block]:
    """The fenced ``bash`` and ``python`` blocks of a Markdown file, with the line of each fence and its marker."""
    text = path.read_text() if text is None else text
    blocks = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start("body"))
        blocks.append(Block(path, line, m.group("body"), m.group("marker"), m.group("lang")))
    return blocks


def bash_blocks(path: Path, text: str | None = None) -> list[Block]:
    """The fenced ``bash`` blocks of a Markdown file."""
    return [b for b in fenced_blocks(path, text) if b.lang == "bash"]


def marker_problems(path: Path, text: str | None = None) -> list[str]:
    """Markers that are malformed or not on the line right before a fence, and bash blocks without a marker."""
    text = path.read_text() if text is None else text
    blocks = fenced_blocks(path, text)
    problems = []
    for block in blocks:
        if block.marker is None:
            if block.lang == "bash":
                problems.append(
                    f"{block.where}: bash block marked neither <!-- docs-test: run --> nor "
                    "<!-- docs-test: not run: <reason> --> (on the line before its fence)"
                )
        elif not block.runnable and not block.not_run_reason:
            problems.append(
                f"{block.where}: marker <!-- docs-test: {block.marker} --> is neither 'run' nor 'not run: <reason>'"
            )
    attached = {b.line - 1 for b in blocks if b.marker is not None}
    stray = [line for m in MARKER.finditer(text) if (line := text.count("\n", 0, m.start()) + 1) not in attached]
    if stray:
        problems.append(
            f"{path.relative_to(REPO)}: {len(stray)} docs-test marker(s) not on the line right before a "
            f"bash or python fence (marker lines {stray})"
        )
    return problems


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
