"""No measured figure is typed into the docstrings or comments of ``cpaf_jax/`` or ``train/``.

A time (``ms``, ``s``, ``us``), a size (``MiB``, ``MB``, ``GB``, ``GiB``), a throughput
(``images/s``) or a ratio (``1.53x``, ``3-4x``) written into code goes stale the moment the
code or the machine changes, and nothing reruns it. Code points to the benchmark section
that measures the claim instead ("section 3b of BENCHMARKS.md"); the numbers live in the
generated ``BENCHMARKS.md`` / ``benchmarks/sweep_throughput.md``.

Comments are read with ``tokenize`` and docstrings (module, class, function) with ``ast``, so
string literals in code (formats, error messages) are not scanned. ``ALLOWED`` lists the
phrases that look like figures but measure nothing; an entry must match somewhere, so the list
cannot outlive what it excuses.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("cpaf_jax", "train")

_NUM = r"(?<![\w.])\d+(?:[.,]\d+)*"
FIGURE = re.compile(
    rf"{_NUM}(?:\s*[-\u2013]\s*\d+(?:\.\d+)?)?"
    # A unit, spaced or not; a bare "s" only after a space or a decimal ("40 s", "0.4s"),
    # since "1s" is the plural of 1 and "2s + j" arithmetic.
    r"(?:\s*(?:ms|us|\u00b5s|sec|seconds|min|minutes|h|hours|MiB|MB|GB|GiB|KiB|kB)\b"
    r"|\s+s\b|(?<=\.\d)s\b|(?<=\.\d\d)s\b"
    r"|\s*(?:images|member-steps|steps)/s\b"
    # A ratio: "1.53x", "3-4x"; not "2x2" (a window) nor "3 x float32" (a count of arrays).
    r"|[x\u00d7](?![\w\d]))"
)

# (path relative to the repository, the exact phrase): figure-like text that measures nothing.
ALLOWED: set[tuple[str, str]] = set()


def _docstrings(tree: ast.AST):
    nodes = [tree] + [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    for node in nodes:
        body = getattr(node, "body", [])
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            yield body[0].value.lineno, body[0].value.value


def _comments(source: str):
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string


def figures_in(source: str) -> list[tuple[int, str]]:
    """``(line, phrase)`` for every measured-looking figure in the source's docs and comments."""
    found = []
    texts = list(_docstrings(ast.parse(source))) + list(_comments(source))
    for lineno, text in texts:
        for m in FIGURE.finditer(text):
            found.append((lineno + text[: m.start()].count("\n"), m.group(0)))
    return sorted(found)


def _files():
    for top in SCANNED:
        yield from sorted((ROOT / top).rglob("*.py"))


FILES = [p.relative_to(ROOT).as_posix() for p in _files()]


@pytest.mark.parametrize("rel", FILES)
def test_no_measured_figure_in_docstrings_or_comments(rel):
    hits = [
        (line, phrase)
        for line, phrase in figures_in((ROOT / rel).read_text())
        if (rel, phrase) not in ALLOWED
    ]
    assert not hits, (
        f"{rel}: measured figures typed into docstrings/comments {hits}; point to the "
        "BENCHMARKS.md section that measures the claim instead"
    )


def test_every_allowed_phrase_still_occurs():
    for rel, phrase in ALLOWED:
        assert phrase in [p for _, p in figures_in((ROOT / rel).read_text())], (rel, phrase)


@pytest.mark.parametrize(
    "text",
    [
        "took 1.53x as long",
        "lax.scan 3-4x slower",
        "37 vs 51-85 ms per member-step",
        "compiled memory 12.95 -> 9.19 MiB",
        "a 40 s rendezvous timeout",
        "dispatch costs 4.8 us",
        "about 6-7 h on two cores",
        "13,662 images/s",
        "2x faster",
        "1.2GB of activations",
        "0.4s of a compile",
    ],
)
def test_the_scan_finds_figures(text):
    assert figures_in(f'"""{text}."""\n'), text
    assert figures_in(f"x = 1  # {text}\n"), text


@pytest.mark.parametrize(
    "text",
    [
        "a 2x2 max-pool over 26x26x16 maps",
        "sums over 8 rows at a time",
        "Eq. 10-12, offset 1/2",
        "learning rate 1e-3, k = 2 terms",
        "per-channel (C, k) parameters of 4.3's networks",
        "as in section 3b",
        "int8 per window",
        "a suffix of x's shape, or 1s",
        "element (2r + j // 2, 2s + j % 2)",
        "-> 3 x float32 [c]",
    ],
)
def test_the_scan_passes_non_measurements(text):
    assert not figures_in(f'"""{text}."""\n# {text}\n'), text


def test_string_literals_in_code_are_not_scanned():
    assert not figures_in('print(f"{t:.1f} ms")\nmsg = "took 2.5x"\n')
