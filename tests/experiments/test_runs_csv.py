"""runs.csv is checked row by row before REPRODUCTION.md is rendered from it: a bad file is
refused naming the line and the field, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpaf_jax.experiments import reproduce, runs_csv

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "reproduction" / "runs.csv"
OLD_REPORT = "# the previous report\n"


def _lines() -> list[str]:
    return COMMITTED.read_text().splitlines()[:6]  # the header and five rows


def _set(line: str, column: str, value: str) -> str:
    fields = line.split(",")
    fields[runs_csv.COLUMNS.index(column)] = value
    return ",".join(fields)


# name -> (how the five rows are damaged, the line the error names, the words it must say)
CASES = {
    "short row": (lambda ls: ls[:3] + [ls[3].rsplit(",", 2)[0]] + ls[4:], 4, "fields"),
    "accuracy text": (lambda ls: ls[:2] + [_set(ls[2], "test_accuracy", "high")] + ls[3:], 3,
                      "field test_accuracy"),
    "accuracy percent": (lambda ls: ls[:2] + [_set(ls[2], "test_accuracy", "86.9")] + ls[3:], 3,
                         "field test_accuracy"),
    "accuracy nan": (lambda ls: ls[:5] + [_set(ls[5], "test_accuracy", "nan")], 6,
                     "field test_accuracy"),
    "loss inf": (lambda ls: ls[:2] + [_set(ls[2], "test_loss", "inf")] + ls[3:], 3,
                 "field test_loss"),
    "seed text": (lambda ls: ls[:4] + [_set(ls[4], "seed", "x")] + ls[5:], 5, "field seed"),
    "seed float": (lambda ls: ls[:4] + [_set(ls[4], "seed", "1.5")] + ls[5:], 5, "field seed"),
    "lr text": (lambda ls: ls[:1] + [_set(ls[1], "lr", "fast")] + ls[2:], 2, "field lr"),
    "lr negative": (lambda ls: ls[:1] + [_set(ls[1], "lr", "-0.001")] + ls[2:], 2, "field lr"),
    "same key, other accuracy": (
        lambda ls: ls + [_set(ls[1], "test_accuracy", "0.5")], 7, "same run as line 2"),
    "exact duplicate": (lambda ls: ls + [ls[3]], 7, "same run as line 4"),
    "blank line": (lambda ls: ls[:3] + [""] + ls[3:], 4, "blank line"),
    "unknown column": (lambda ls: [ls[0].replace("test_loss", "loss")] + ls[1:], 1, "header"),
}  # fmt: skip


@pytest.mark.parametrize("case", tuple(CASES))
def test_a_bad_runs_csv_is_refused_naming_the_line_and_nothing_is_written(tmp_path, capsys, case):
    damage, line, words = CASES[case]
    bad = tmp_path / "runs.csv"
    bad.write_text("\n".join(damage(_lines())) + "\n")
    doc = tmp_path / "REPRODUCTION.md"
    doc.write_text(OLD_REPORT)
    assert reproduce.main(["--report-only", "--csv", str(bad), "--doc", str(doc)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert f"line {line}" in err and words in err, err
    assert doc.read_text() == OLD_REPORT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["REPRODUCTION.md", "runs.csv"]


def test_the_committed_runs_csv_is_valid():
    rows = runs_csv.read(str(COMMITTED))
    assert len(rows) == len(COMMITTED.read_text().splitlines()) - 1


def test_written_rows_read_back(tmp_path):
    rows = runs_csv.read(str(COMMITTED))[:7]
    path = tmp_path / "runs.csv"
    runs_csv.write(str(path), rows)
    assert sorted(map(str, runs_csv.read(str(path)))) == sorted(map(str, rows))
    assert [p.name for p in tmp_path.iterdir()] == ["runs.csv"]


def test_a_failed_render_or_write_leaves_the_report(tmp_path, monkeypatch, capsys):
    doc = tmp_path / "REPRODUCTION.md"
    doc.write_text(OLD_REPORT)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reproduce.atomic.os, "replace", full_disk)
    args = ["--report-only", "--csv", str(COMMITTED), "--doc", str(doc)]
    assert reproduce.main(args) == 2
    assert "No space left" in capsys.readouterr().err
    assert doc.read_text() == OLD_REPORT and [p.name for p in tmp_path.iterdir()] == [doc.name]
    monkeypatch.setattr(reproduce, "render", lambda rows, **kw: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        reproduce.write_report(str(COMMITTED), str(doc))
    assert doc.read_text() == OLD_REPORT
