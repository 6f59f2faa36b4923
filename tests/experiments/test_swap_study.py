"""The swap study's page is computed from its per-seed CSV alone."""

from __future__ import annotations

import re

from cpaf_jax.experiments import swap_study


def _rows():
    rows = []
    relu = {"pretrained": [0.80, 0.82, 0.84], "continued": [0.85, 0.86, 0.87]}
    pau = {"swapped": [0.79, 0.82, 0.83], "finetuned": [0.86, 0.88, 0.90]}
    for family, phases in (("relu", relu), ("pau", pau)):
        for phase, values in phases.items():
            for seed, acc in enumerate(values):
                epochs = 1 if phase in ("pretrained", "swapped") else 2
                rows.append({
                    "commit": "abc", "seed": str(seed), "family": family, "options": "",
                    "phase": phase, "epochs": str(epochs), "test_accuracy": str(acc),
                    "test_loss": "0.5",
                })  # fmt: skip
    return rows


def test_the_page_is_rendered_from_the_rows(tmp_path):
    path = tmp_path / "runs.csv"
    swap_study.write_csv(str(path), _rows())
    rows = swap_study.read_csv(str(path))
    page = swap_study.render(rows, "runs.csv")
    assert "ReLU: 82.00 [" in page and ", 86.00 [" in page  # means of the two ReLU phases
    line = next(ln for ln in page.splitlines() if ln.startswith("| pau |"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[2].startswith("81.33 [")  # mean right after the swap
    assert cells[3].startswith("-0.67 [")  # paired: (-1, 0, -1) / 3
    assert cells[4].startswith("88.00 [")
    assert cells[5].startswith("+2.00 [")  # (1, 2, 3) / 3
    assert re.search(r"p=0\.\d+", cells[5])
    assert cells[6] == "-1.00"  # the worst seed at the swap
    assert "commit abc" in page and "`runs.csv`" in page


def test_the_committed_page_is_its_csv_rendered():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    rows = swap_study.read_csv(str(docs / "swap" / "runs.csv"))
    assert len({r["seed"] for r in rows}) == 10
    assert {r["family"] for r in rows} == {"relu", *swap_study.FAMILIES}
    expected = swap_study.render(rows, "docs/swap/runs.csv")
    assert (docs / "swap_study.md").read_text() == expected
    assert "\nswap_study\n" in (docs / "index.md").read_text()  # in the toctree
