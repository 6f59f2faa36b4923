"""The committed benchmark reports are exactly what their JSON renders to.

``BENCHMARKS.md`` and ``benchmarks/sweep_throughput.md`` are generated files: re-rendered
here from ``benchmarks/BENCHMARKS.json`` and ``benchmarks/sweep_throughput.json`` and compared
byte for byte, so a hand edit, or a JSON replaced without its table, fails CI. After changing
a renderer, regenerate them with ``python -m benchmarks.report`` and
``python -m benchmarks.sweep_throughput --render``.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import sys
from pathlib import Path

# benchmarks/ is a top-level folder of the repository, not part of the installed package.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_no_typed_figures import FIGURE  # noqa: E402

from benchmarks import doc_figures, report, sweep_throughput  # noqa: E402
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


# --- Figures in README.md and docs/: filled from the JSON at build time, never typed. ---

PROSE = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "docs" / "tutorials").glob("*.md")]
)
# (file, phrase): figures in prose that no run of ours measured.
PROSE_ALLOWED = {
    ("docs/layout.md", "1.44x"),  # the paper's own CPAF/ReLU time per epoch (its Table 6; SPEC.md)
    # The README's expected times on a 2-core CPU, which a reader needs before running anything:
    # four networks x 10 epochs at the epoch time of BENCHMARKS.md section 4, and the CI run's
    # wall time of scripts/test.sh.
    ("README.md", "3 minutes"),
    ("README.md", "16 minutes"),
}
_SUBST = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def test_docs_and_readme_type_no_measured_figure():
    hits = []
    for path in PROSE:
        rel = path.relative_to(ROOT).as_posix()
        for i, line in enumerate(path.read_text().splitlines(), 1):
            hits += [
                (rel, i, m.group(0))
                for m in FIGURE.finditer(line)
                if (rel, m.group(0)) not in PROSE_ALLOWED
            ]
    assert not hits, (
        f"measured figures typed into prose {hits}: write {{{{ name }}}} with a figure from "
        "benchmarks/doc_figures.py (docs/), or point to the BENCHMARKS.md section (README)"
    )


def test_allowed_prose_figures_still_occur():
    for rel, phrase in PROSE_ALLOWED:
        assert phrase in (ROOT / rel).read_text(), (rel, phrase)


def test_every_figure_the_docs_use_comes_from_the_json():
    known = doc_figures.figures()
    used = {name for p in PROSE for name in _SUBST.findall(p.read_text())}
    assert used, "the docs quote no benchmark figure: the check would pass vacuously"
    assert used <= set(known), f"undefined figures: {sorted(used - set(known))}"


def test_figures_are_the_json_values():
    bench, sweep = _load(BENCH_JSON), _load(SWEEP_JSON)
    fig = doc_figures.figures(bench, sweep)
    rows = {(r["network"], r["activation"]): r for r in bench["sections"]["train_step"]["rows"]}
    assert (
        fig["fmnist_cpaf_relu_ratio"] == f"{rows[('FashionNet (4.2)', 'cpaf_relu')]['ratio']:.2f}x"
    )
    fusion = {r["activation"]: r for r in bench["sections"]["train_step"]["fusion"]}
    assert fig["fusion_cpaf_sigmoid_unfused_mib"] == (
        f"{fusion['cpaf_sigmoid']['unfused_memory'] / 2**20:.2f} MiB"
    )
    loop = [r["ratio_to_sequential"]["loop"] for r in sweep["rows"]]
    assert fig["sweep_loop_ratio"] == f"{min(loop):.2f}-{max(loop):.2f}x"
    # Another run gives other figures.
    rows[("FashionNet (4.2)", "cpaf_relu")]["ratio"] = 9.87
    assert doc_figures.figures(bench, sweep)["fmnist_cpaf_relu_ratio"] == "9.87x"


def test_the_prose_check_catches_a_typed_figure(tmp_path):
    assert FIGURE.search("CPAF-ReLU took 1.14x the ReLU step")
    assert FIGURE.search("about 11 minutes on 2 cores")
    assert not FIGURE.search("CPAF-ReLU took {{ fmnist_cpaf_relu_ratio }} the ReLU step")


def test_the_committed_run_gives_every_figure_and_a_partial_run_still_builds():
    fig = doc_figures.figures()
    assert set(fig) == set(doc_figures.NAMES)
    assert doc_figures.MISSING not in fig.values()
    bench = _load(BENCH_JSON)
    bench["sections"]["torch_peer"] = {"available": False, "rows": []}  # torch not installed
    partial = doc_figures.figures(bench)
    assert set(partial) == set(doc_figures.NAMES)
    assert partial["torch_relu_ms"] == doc_figures.MISSING
    assert partial["fmnist_cpaf_relu_ratio"] == fig["fmnist_cpaf_relu_ratio"]


# --- The built pages load no script from the network (the equations render offline). ---

_SCRIPT_SRC = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']([^\"']+)[\"']", re.I)
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)


def network_scripts(html: str) -> list[str]:
    """The ``src`` of every ``<script>`` that loads from another host (``https://``, ``//``)."""
    return [src for src in _SCRIPT_SRC.findall(html) if _REMOTE.match(src)]


def test_the_network_check_catches_a_cdn_script():
    page = (
        '<script src="_static/mathjax/tex-chtml.js"></script>'
        '<script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>'
        "<script src='//cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js'></script>"
    )
    assert network_scripts(page) == [
        "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js",
        "//cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js",
    ]


def _docs_setting(name: str):
    """A literal setting of docs/conf.py (read, not executed: the conf runs the CLI)."""
    tree = ast.parse((ROOT / "docs" / "conf.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise KeyError(name)


def test_a_page_with_equations_built_with_the_docs_settings_loads_nothing_remote(tmp_path):
    from sphinx.application import Sphinx

    src, out = tmp_path / "src", tmp_path / "html"
    src.mkdir()
    settings = {
        "extensions": _docs_setting("extensions"),
        "html_theme": _docs_setting("html_theme"),
        "myst_enable_extensions": ["dollarmath", "amsmath"],
        "nb_execution_mode": "off",
        "source_suffix": {".md": "myst-nb"},
    }
    (src / "conf.py").write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items()))
    (src / "index.md").write_text("# Equations\n\n$$\nz = \\sum_{i=1}^{k} a_i f(y - b_i)\n$$\n")
    app = Sphinx(str(src), str(src), str(out), str(tmp_path / "doctrees"), "html", status=None)
    app.build()
    html = (out / "index.html").read_text()
    assert "z = \\sum_{i=1}^{k}" in html  # the equation is on the page, for MathJax to typeset
    scripts = _SCRIPT_SRC.findall(html)
    assert any("mathjax/tex-chtml.js" in s for s in scripts), scripts
    assert (out / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert network_scripts(html) == []


def test_built_docs_load_no_script_from_the_network():
    """Every page of the last ``bash scripts/docs.sh`` build, where there is one (the build runs
    after the tests in scripts/test.sh; the test above builds a page itself)."""
    built = ROOT / "docs" / "_build" / "html"
    pages = sorted(built.rglob("*.html")) if built.is_dir() else []
    found = {
        p.relative_to(built).as_posix(): network_scripts(p.read_text(errors="replace"))
        for p in pages
    }
    assert not {p: s for p, s in found.items() if s}
    if (built / "equations.html").is_file():
        assert (built / "_static" / "mathjax" / "tex-chtml.js").is_file()
