"""The README's quick-start example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_quick_start():
    assert python_blocks(), "README.md lost its ```python quick-start block"


def test_readme_quick_start_runs():
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})


def test_readme_gives_exactly_two_setup_commands():
    text = README.read_text()
    section = text.split("## The two commands", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^bash (\S+)", section, flags=re.M)
    assert commands == ["scripts/main.sh", "scripts/test.sh"]
    for cmd in commands:
        assert (README.parent / cmd).is_file()


def test_readme_is_short_and_says_what_the_commands_cost():
    text = README.read_text()
    assert len(text.splitlines()) <= 150, "README.md is a front page: move reference to docs/"
    (block,) = python_blocks()
    assert len(block.strip().splitlines()) <= 25
    section = text.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"scripts/main\.sh[^.]*about \d+ minutes", section, flags=re.S)
    assert re.search(r"scripts/test\.sh[^.]*about \d+ minutes", section, flags=re.S)


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)\)", README.read_text()):
        if not target.startswith("http"):
            assert (README.parent / target).exists(), target
