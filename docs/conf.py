"""Sphinx configuration for the cpaf-jax docs (``bash scripts/docs.sh`` builds them).

Sphinx with autodoc/autosummary/napoleon and MyST-NB, as JAX, Flax and optax use: the
docstrings are Google style with RST inline markup, which napoleon renders as written, and the
tutorials are MyST Markdown notebooks that MyST-NB executes at every build, so their code and
outputs cannot drift from the library. The build runs with warnings as errors (``-W``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

project = "cpaf-jax"
author = "cpaf-jax developers"
copyright = "2026, cpaf-jax developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    # MathJax 3 bundled into _static/mathjax (the docs extra's sphinx-mathjax-offline): the
    # equations render without a network connection. tests/test_rendered_docs.py checks that
    # no page loads a script from the network.
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
exclude_patterns = [
    "_build",
    "reproduction",
    "cli_intro.md",
    "**.ipynb_checkpoints",
    "jupyter_execute",
]
templates_path = ["_templates"]

# API reference: the public names, by task (docs/api/*.md), each documented under the name a
# user imports (``cpaf_jax.cpaf``, ``cpaf_jax.training.train``); module internals stay out.
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# An autosummary table shows a docstring's first sentence: "(Eq. 7-9)" is not a sentence end.
from sphinx.ext import autosummary as _autosummary  # noqa: E402

_autosummary.WELL_KNOWN_ABBREVIATIONS = (
    *_autosummary.WELL_KNOWN_ABBREVIATIONS,
    "Eq.",
    "Eqs.",
    "Fig.",
    "Figs.",
    "Sec.",
    "cf.",
)
_extract_summary = _autosummary.extract_summary


def _summary(doc, settings) -> str:
    """Autosummary's first sentence, without the ``::`` of a literal block that follows it."""
    text = _extract_summary(doc, settings)
    return text[: -len("::.")] + "." if text.endswith("::.") else text


_autosummary.extract_summary = _summary

# Tutorials: executed at every build; a failing cell fails the build.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "substitution"]
# Markdown that a notebook cell displays (the tutorials' result tables) is parsed as MyST, whose
# tables CommonMark, the default, lacks.
nb_render_markdown_format = "myst"
nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# Measured figures in the prose ({{ name }}) come from the committed benchmark runs, read here at
# every build (benchmarks/doc_figures.py); none is typed by hand.
from benchmarks.doc_figures import figures  # noqa: E402

myst_substitutions = figures()

html_theme = "furo"
html_title = "cpaf-jax"
html_static_path: list[str] = []


def _write_cli_reference() -> None:
    """``cpaf-train`` help texts, captured at build time into ``generated/cpaf-train.md``."""
    out = DOCS / "generated"
    out.mkdir(exist_ok=True)
    env = dict(os.environ, COLUMNS="100", JAX_PLATFORMS="cpu")
    parts = [(DOCS / "cli_intro.md").read_text()]
    for title, args in (
        ("cpaf-train", ["--help"]),
        ("cpaf-train reproduce", ["reproduce", "--help"]),
        ("cpaf-train inspect", ["inspect", "--help"]),
        ("cpaf-train finetune", ["finetune", "--help"]),
        ("cpaf-train swap-study", ["swap-study", "--help"]),
        ("cpaf-train build-kernel", ["build-kernel", "--help"]),
    ):
        text = subprocess.run(
            [sys.executable, "-m", "train", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        parts.append(f"## `{title}`\n\n```text\n{text.rstrip()}\n```\n")
    (out / "cpaf-train.md").write_text("\n".join(parts))


_write_cli_reference()
