"""The product speaks to its users: no tracker numbers and no words on who works on it or when.

A reader of the code, the help texts, the docs or the generated reports cannot look up
"issue 17" or know who "the lead" is; the reason itself belongs in the text. CHANGELOG.md
cites versions and is not scanned; the tests are not the product either (pytest's
``scope="session"`` is a fixture scope).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("cpaf_jax", "train", "benchmarks", "docs", "scripts", ".ci")
FILES = ("README.md", "BENCHMARKS.md", "REPRODUCTION.md", "pyproject.toml")
SUFFIXES = {".py", ".md", ".sh", ".txt", ".toml", ".cfg", ".json", ".csv", ".cc", ".rst", ""}
# Build outputs and caches: generated from the scanned sources.
SKIPPED_DIRS = {"_build", "generated", "_autosummary", "jupyter_execute", "__pycache__"}

WORKFLOW = re.compile(
    r"\bissues?\s*#?\d+"  # "issue 17", "Issue 18's", "issues 3"
    r"|\bissue-\d"
    r"|\(#\d+\)"  # a pull-request reference
    r"|\bthe lead\b"
    r"|\bsessions?\b"
    r"|\bwork(?:ing)?[- ]periods?\b"
    r"|\bhelpers? (?:agents?|branch(?:es)?)\b",
    flags=re.IGNORECASE,
)


def _files() -> list[Path]:
    out = [ROOT / f for f in FILES if (ROOT / f).is_file()]
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT).parts
            if path.is_file() and path.suffix in SUFFIXES and not SKIPPED_DIRS & set(rel):
                out.append(path)
    return out


def hits_in(text: str) -> list[tuple[int, str]]:
    """``(line, phrase)`` for each workflow phrase in ``text``."""
    return [
        (i, m.group(0))
        for i, line in enumerate(text.splitlines(), 1)
        for m in WORKFLOW.finditer(line)
    ]


def test_no_workflow_words_in_the_product():
    files = _files()
    assert len(files) > 100, "the scan found almost nothing: check SCANNED"
    found = []
    for path in files:
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [(path.relative_to(ROOT).as_posix(), i, w) for i, w in hits_in(text)]
    assert not found, f"tracker numbers or workflow words in the product: {found}"


def test_the_scan_catches_what_it_is_for():
    for phrase in (
        "goal (issue 18)",
        "Issue 18's goals",
        "see issue-17",
        "fixed in (#42)",
        "the lead can stop and restart a stage across sessions",
        "in the next work period",
    ):
        assert hits_in(phrase), phrase
    for fine in (
        "the leading axis",
        "lead = len(x_shape) - len(shape)",
        "journal issue: 9",
        "Known issues are listed in the tracker",
        "a helper function",
    ):
        assert not hits_in(fine), fine
