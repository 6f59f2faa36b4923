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
    from benchmarks import user_network
    from benchmarks.__main__ import main

    main(["--smoke", "--out", str(tmp_path)])
    md = (tmp_path / "BENCHMARKS.md").read_text()
    data = json.loads((tmp_path / "BENCHMARKS.json").read_text())

    for heading in (
        "## 1. Activation alone",
        "### 1b. The CPAF layer for k = 1..8",
        "## 2. Training step",
        "### 2b. CPAF dropped into a user's network",
        "## 3. Compiled memory",
        "### 3b. What the fused",
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
    for name in ("activation", "layer_table", "train_step", "user_network", "memory", "epoch"):
        assert name in sections
    assert "torch_peer" in sections and "loop_strategy" in sections
    fusion = sections["train_step"]["fusion"]
    assert fusion and all(r["fused_memory"] > 0 and r["unfused_ms"] > 0 for r in fusion)
    layer = sections["layer_table"]["rows"]
    variants = {(r["base"], r["sharing"], r["k"], r["variant"]) for r in layer}
    # Every base and sharing of the smoke plan at each k, a floor per base and k, and the
    # other implementations at k = 2.
    for base in ("relu", "sigmoid"):
        for k in (1, 2):
            assert (base, "element", k, "floor") in variants
            for sharing in ("element", "channel"):
                assert (base, sharing, k, "default") in variants
        for impl in ("xla_vjp", "unrolled", "naive"):
            assert (base, "element", 2, impl) in variants
    # The ReLU base's default backward is XLA's; the kernel's ReLU form has its own row where
    # the kernel is built.
    from cpaf_jax.ops import cpu_kernel

    assert (("relu", "element", 2, "kernel") in variants) == cpu_kernel.available()
    assert ("sigmoid", "element", 2, "kernel") not in variants
    # Every row under both compilations, ReLU's reference included.
    by_jit = {
        j: {(r["base"], r["sharing"], r["k"], r["variant"]) for r in layer if r["jit"] == j}
        for j in ("jax.jit", "cpaf_jax.jit")
    }
    assert by_jit["jax.jit"] == by_jit["cpaf_jax.jit"] == variants
    assert all(r["ms"] > 0 for r in layer)
    assert all("to_k2" in r for r in layer if r["variant"] == "default")
    user = sections["user_network"]["rows"]
    assert {(r["network"], r["jit"], r["activation"]) for r in user} == {
        (n, j, a)
        for n in ("4.2 network, plain JAX", "Flax MNIST CNN")
        for j in ("jax.jit", "cpaf_jax.jit")
        for a in user_network.ACTIVATIONS
    }
    relu_rows = [r for r in user if r["activation"] == "relu" and r["jit"] == "cpaf_jax.jit"]
    assert len(relu_rows) == 2 and all(r["to_jax_jit"] > 0 for r in relu_rows)
    assert "4.2 network step under jax.jit, cpaf_sigmoid / relu" in md
    assert {"relu", "cpaf_relu", "cpaf_sigmoid", "cpaf_sigmoid (xla_vjp)"} <= set(
        user_network.ACTIVATIONS
    )
    assert all(r["memory"] > 0 for r in user)
    assert [r for r in user if r["activation"] == "relu"][0]["mem_ratio"] == 1.0
    assert "| goal | measured | target |" in md
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
    # pieces, run inside shard_map by the loop strategy over the CPU devices. (One activation:
    # the rows of another are the same code.)
    args = ["--members", "1", "2", "--activations", "cpaf_relu"]
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
    assert "| cpaf_relu | 2 |" in (tmp_path / "sweep_throughput.md").read_text()


def test_device_check_smoke(tmp_path):
    """``python -m benchmarks.device_check --smoke`` runs every part on CPU and writes
    DEVICE.md and DEVICE.json into --out."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [sys.executable, "-m", "benchmarks.device_check", "--smoke", "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads((tmp_path / "DEVICE.json").read_text())
    assert data["mode"] == "smoke" and data["backend"]
    assert data["tests"]["returncode"] == 0, data["tests"]
    assert "passed" in data["tests"]["summary"]
    mesh = {r["strategy"]: r for r in data["mesh"]["rows"]}
    assert set(mesh) == {"loop", "vmap", "data_parallel"}
    assert mesh["vmap"]["devices"] == mesh["data_parallel"]["devices"] == 2
    assert all(r["max_loss_diff"] < 1e-3 for r in mesh.values()), mesh
    assert "## Multi-device paths" in (tmp_path / "DEVICE.md").read_text()
    steps = {(r["network"], r["activation"]) for r in data["steps"]["rows"]}
    assert ("FashionNet (fused blocks)", "cpaf_sigmoid") in steps
    assert ("4.2 network, plain JAX", "cpaf_sigmoid") in steps
    assert [r["members"] for r in data["sweep"]["rows"]] == [2]
    assert all(r["vmap"] > 0 and r["loop"] > 0 for r in data["sweep"]["rows"])
    md = (tmp_path / "DEVICE.md").read_text()
    assert "## Core tests" in md and "| 2 |" in md
