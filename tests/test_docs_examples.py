"""The guides and the API reference hold code that runs: every ```python block of their pages is
executed, and every ``cpaf-train`` command they show is parsed by the command's own parser.

The tutorials and other notebook pages are executed by the docs build itself (MyST-NB), not
here.
"""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path

import pytest

from cpaf_jax.experiments.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# Notebook pages (a MyST-NB front matter) are executed by the docs build itself.
PAGES = sorted(
    p
    for p in [*DOCS.glob("*.md"), *(DOCS / "api").glob("*.md")]
    if not p.read_text().startswith("---\nfile_format: mystnb")
)
BLOCKS = [
    pytest.param(page, i, block, id=f"{page.relative_to(DOCS)}[{i}]")
    for page in PAGES
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S))
]


def test_the_api_pages_each_have_an_example():
    pages = {p for p, _, _ in (b.values for b in BLOCKS)}
    for page in (DOCS / "api").glob("*.md"):
        if page.name != "index.md":
            assert page in pages, f"{page.name} has no ```python example"


@pytest.mark.parametrize("page, i, block", BLOCKS)
def test_python_examples_run(page, i, block):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the pages show current names only
        exec(compile(block, f"{page}[{i}]", "exec"), {"__name__": "docs_example"})


def _commands(text: str) -> list[list[str]]:
    """Every ``cpaf-train ...`` line of the ```bash blocks, as arguments (comments dropped)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.startswith("cpaf-train "):
                out.append(shlex.split(line, comments=True)[1:])
    return out


def test_the_shown_commands_parse(tmp_path, monkeypatch):
    commands = [c for p in [ROOT / "README.md", *PAGES] for c in _commands(p.read_text())]
    assert len(commands) >= 4
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data").mkdir()  # `--data-dir ~/data` must exist to parse
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args([a.replace("~", str(tmp_path)) for a in argv])
        assert args.experiment == argv[0]


def test_a_wrong_command_would_fail_to_parse():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fashion_mnist", "--no-such-option"])
