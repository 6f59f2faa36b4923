"""The docs' table of one way per task (``docs/api_table.md``) runs as written, and every call
it names exists at the place it says."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import cpaf_jax

PAGE = Path(__file__).resolve().parent.parent / "docs" / "api_table.md"


def test_the_pages_example_runs_without_warnings():
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert blocks, "docs/api_table.md lost its example"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the table names no old name
        for block in blocks:
            exec(compile(block, str(PAGE), "exec"), {"__name__": "api_table"})


def test_the_tables_calls_are_current_names():
    table = PAGE.read_text().split("## Old names")[0]
    calls = set(re.findall(r"cpaf_jax\.(\w+)\(", table))
    assert {"cpaf", "activation", "fit_curve", "family", "train", "Member", "TrainConfig"} <= calls
    for name in calls:
        assert name in cpaf_jax.__all__, name
    assert "\napi_table\n" in (PAGE.parent / "index.md").read_text()  # in the toctree
