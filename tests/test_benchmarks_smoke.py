"""The benchmark suite runs end to end in its smallest mode and writes every section.

Asserts structure only, never speed: timings on a shared test machine mean nothing.
"""

from __future__ import annotations

import json
import os
import sys

# benchmarks/ is a top-level folder of the repository, not part of the installed package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_benchmark_suite_smoke(tmp_path):
    from benchmarks.__main__ import main

    main(["--smoke", "--out", str(tmp_path)])
    md = (tmp_path / "BENCHMARKS.md").read_text()
    data = json.loads((tmp_path / "BENCHMARKS.json").read_text())

    for heading in (
        "## 1. Activation alone",
        "## 2. Training step",
        "## 3. Compiled memory",
        "### 3b. What the fused",
        "### 3c. CPAF-sigmoid's terms",
        "## 4. Epoch through",
        "## 5. PyTorch eager peer",
        "## 6. Loop strategy",
    ):
        assert heading in md
    assert data["provenance"]["command"].startswith("python -m benchmarks --smoke")
    assert "commit" in data["provenance"] and data["provenance"]["timestamp_utc"]
    machine = data["machine"]
    assert machine["cpu_count"] >= 1 and machine["cpu_model"]
    assert machine["versions"]["jax"] and machine["backend"]
    sections = data["sections"]
    for name in ("activation", "train_step", "memory", "epoch", "torch_peer", "loop_strategy"):
        assert name in sections
    fusion = sections["train_step"]["fusion"]
    assert fusion and all(r["fused_memory"] > 0 and r["unfused_ms"] > 0 for r in fusion)
    terms = {r["variant"]: r for r in sections["train_step"]["terms"]}
    assert set(terms) == {"relu", "recomputed", "kept"}
    assert terms["relu"]["mem_ratio"] == 1.0 and terms["kept"]["step_ms"] > 0
    # Compiled memory is deterministic: the switch reached the kept variant's trace. (Which is
    # larger depends on the batch: at this smoke size, 32, the two are within 1%; at 128
    # tests/test_pooling.py checks that recomputing saves memory.)
    assert terms["kept"]["memory"] != terms["recomputed"]["memory"]
    names = {r["name"] for r in sections["activation"]["rows"]}
    assert {"relu", "prelu", "elu", "sigmoid", "tanh"} <= names
    assert any(n.startswith("cpaf_relu") for n in names)
    assert any(n.startswith("cpaf_sigmoid") for n in names)
    for row in sections["train_step"]["rows"]:
        assert row["step_ms"] > 0 and row["memory"]["total"] > 0
    assert sections["epoch"]["rows"][0]["fit_images_per_s"] > 0
    assert sections["loop_strategy"]["faster"] in ("scan", "python loop")


def test_sweep_throughput_smoke(tmp_path):
    """``python -m benchmarks.sweep_throughput`` runs as a command (its own process, so it can
    split the CPU into devices) and writes a row per activation and M with every strategy."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # cpaf_relu: FashionNet's per-element CPAF, whose pooled backward pass loops over batch
    # pieces, run inside shard_map by the loop strategy over the CPU devices.
    args = ["--members", "1", "2", "--activations", "relu", "cpaf_relu"]
    args += ["--steps", "1", "--repeats", "1"]
    cmd = [sys.executable, "-m", "benchmarks.sweep_throughput", *args]
    done = subprocess.run(
        [*cmd, "--min-member-steps", "1", "--out", str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads((tmp_path / "sweep_throughput.json").read_text())
    assert [(r["activation"], r["members"]) for r in data["rows"]] == [
        ("relu", 1),
        ("relu", 2),
        ("cpaf_relu", 1),
        ("cpaf_relu", 2),
    ]
    for row in data["rows"]:
        ratios = row["ratio_to_sequential"]
        assert set(ratios) == {"sequential", "vmap", "chunked", "loop", "auto"}
        assert ratios["sequential"] == 1.0 and all(v > 0 for v in ratios.values())
    if data["meta"]["backend"] == "cpu":  # split_cpu: one device per core
        assert data["meta"]["sweep_mesh_devices"] == (os.cpu_count() or 1)
    assert "-m benchmarks.sweep_throughput" in data["provenance"]["command"]
    assert "| relu | 2 |" in (tmp_path / "sweep_throughput.md").read_text()
