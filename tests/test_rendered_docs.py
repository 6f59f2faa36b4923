"""The committed benchmark reports are exactly what their JSON renders to.

``BENCHMARKS.md`` and ``benchmarks/sweep_throughput.md`` are generated files: re-rendered
here from ``benchmarks/BENCHMARKS.json`` and ``benchmarks/sweep_throughput.json`` and compared
byte for byte, so a hand edit, or a JSON replaced without its table, fails CI. After changing
a renderer, regenerate them with ``python -m benchmarks.report`` and
``python -m benchmarks.sweep_throughput --render``.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

# benchmarks/ is a top-level folder of the repository, not part of the installed package.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report, sweep_throughput  # noqa: E402
from cpaf_jax.provenance import provenance  # noqa: E402

BENCH_JSON = ROOT / "benchmarks" / "BENCHMARKS.json"
SWEEP_JSON = ROOT / "benchmarks" / "sweep_throughput.json"


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_benchmarks_md_is_rendered_from_its_json():
    rendered = report.markdown(_load(BENCH_JSON))
    committed = (ROOT / "BENCHMARKS.md").read_text()
    assert rendered == committed, "BENCHMARKS.md differs: run python -m benchmarks.report"


def test_sweep_table_is_rendered_from_its_json():
    rendered = sweep_throughput.markdown(_load(SWEEP_JSON))
    committed = (ROOT / "benchmarks" / "sweep_throughput.md").read_text()
    assert rendered == committed, (
        "sweep_throughput.md differs: run python -m benchmarks.sweep_throughput --render"
    )


def test_the_comparison_catches_an_edited_figure():
    data = _load(BENCH_JSON)
    row = data["sections"]["train_step"]["rows"][0]
    before = report.markdown(data)
    row["step_ms"] += 1.0
    assert report.markdown(data) != before


def test_a_written_report_carries_provenance_and_re_renders_identically(tmp_path):
    results = copy.deepcopy(_load(BENCH_JSON))
    results.pop("json_path", None)
    results["provenance"] = provenance(["python", "-m", "benchmarks"])
    md, js = tmp_path / "BENCHMARKS.md", tmp_path / "BENCHMARKS.json"
    report.write(results, str(md), [str(js)])
    stored = _load(js)
    assert stored["provenance"]["command"] == "python -m benchmarks"
    assert stored["provenance"]["machine"]["cpu_count"] == os.cpu_count()
    assert report.markdown(stored) == md.read_text()
    header = md.read_text().split("\n\n")[1]
    if stored["provenance"]["commit"]:
        assert stored["provenance"]["commit"][:12] in header
    assert stored["provenance"]["machine"]["cpu_model"] in header


def test_the_sweep_table_names_commit_and_machine():
    data = _load(SWEEP_JSON)
    data["provenance"] = provenance(["python", "-m", "benchmarks.sweep_throughput"], root=ROOT)
    text = sweep_throughput.markdown(data)
    if data["provenance"]["commit"]:
        assert data["provenance"]["commit"][:12] in text
    assert data["provenance"]["machine"]["cpu_model"] in text
    assert "`python -m benchmarks.sweep_throughput`" in text


def test_render_commands_rewrite_the_markdown(tmp_path):
    (tmp_path / "sweep_throughput.json").write_text(SWEEP_JSON.read_text())
    sweep_throughput.main(["--render", "--out", str(tmp_path)])
    assert (tmp_path / "sweep_throughput.md").read_text() == (
        ROOT / "benchmarks" / "sweep_throughput.md"
    ).read_text()
    report.render(str(BENCH_JSON), str(tmp_path / "B.md"))
    assert (tmp_path / "B.md").read_text() == (ROOT / "BENCHMARKS.md").read_text()


def test_reproduction_cifar_cost_is_read_from_the_benchmark_json(tmp_path):
    from cpaf_jax.experiments.reproduce import cifar_cost

    data = _load(BENCH_JSON)
    rows = data["sections"]["train_step"]["rows"]
    s1 = next(
        r for r in rows if r["network"].startswith("CifarNet S1") and r["activation"] == "relu"
    )
    fash = next(
        r for r in rows if r["network"].startswith("FashionNet") and r["activation"] == "relu"
    )
    text = cifar_cost()
    assert f"{s1['step_ms']:.2f} ms for {s1['batch']} images" in text
    assert f"{fash['step_ms']:.2f} ms for {fash['batch']} images" in text
    # A different run gives different figures: nothing is typed into the generator.
    s1["step_ms"] *= 2
    data["provenance"] = {"commit": "0123456789abcdef" * 2 + "01234567"}
    (tmp_path / "B.json").write_text(json.dumps(data))
    other = cifar_cost(str(tmp_path / "B.json"))
    assert f"{s1['step_ms']:.2f} ms" in other and other != text
    assert "commit `0123456789ab`" in other
    # No benchmark file (an installed package): the section, no figure.
    missing = cifar_cost(str(tmp_path / "none.json"))
    assert "section 2 of `BENCHMARKS.md`" in missing and " ms " not in missing
