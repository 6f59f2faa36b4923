"""The measured figures the docs quote, computed from the committed benchmark runs.

``docs/conf.py`` hands ``figures()`` to MyST as substitutions, so ``docs/performance.md`` and
the tutorials write ``{{ fmnist_cpaf_relu_ratio }}`` and the build fills in the number from
``benchmarks/BENCHMARKS.json`` and ``benchmarks/sweep_throughput.json``: a new benchmark run
changes the docs with it, and no figure in the docs is typed by hand
(``tests/test_rendered_docs.py`` checks that). ``python -m benchmarks.doc_figures`` prints
them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_JSON = ROOT / "benchmarks" / "BENCHMARKS.json"
SWEEP_JSON = ROOT / "benchmarks" / "sweep_throughput.json"


def _x(v: float, nd: int = 2) -> str:
    return f"{v:.{nd}f}x"


def _range(vals, nd: int = 2, unit: str = "x") -> str:
    lo, hi = min(vals), max(vals)
    return (
        f"{lo:.{nd}f}{unit}"
        if f"{lo:.{nd}f}" == f"{hi:.{nd}f}"
        else f"{lo:.{nd}f}-{hi:.{nd}f}{unit}"
    )


def _mib(b: float) -> str:
    return f"{b / 2**20:.2f} MiB"


def _run(b: dict) -> dict[str, str]:
    m = b["machine"]
    commit = (b.get("provenance") or {}).get("commit")
    return {
        "bench_machine": f"{m['cpu_model']}, {m['cpu_count']} cores",
        "bench_minutes": f"{sum(b['seconds'].values()) / 60:.0f} minutes",
        "bench_commit": f"commit {commit[:12]}" if commit else "commit not recorded",
    }


def _steps(b: dict) -> dict[str, str]:
    """Section 2 (training step, ratio to ReLU) and 3 (compiled memory)."""
    rows = b["sections"]["train_step"]["rows"]
    step = {(r["network"].split(" (")[0], r["activation"]): r for r in rows}
    fn = {a: r for (n, a), r in step.items() if n == "FashionNet"}
    out = {"fmnist_relu_mib": _mib(fn["relu"]["memory"]["total"])}
    for act in ("cpaf_relu", "cpaf_sigmoid"):
        out[f"fmnist_{act}_ratio"] = _x(fn[act]["ratio"])
        out[f"fmnist_{act}_mem_ratio"] = _x(fn[act]["mem_ratio"])
        for st in (1, 2, 3):
            out[f"cifar_s{st}_{act}_ratio"] = _x(step[(f"CifarNet S{st}", act)]["ratio"])
    unfused = [
        step[(f"CifarNet S{st}", act)]["mem_ratio"]
        for st in (1, 3)
        for act in ("cpaf_relu", "cpaf_sigmoid")
    ]
    out["cifar_unfused_cpaf_mem_ratio"] = _range(unfused, 1)
    return out


def _fusion(b: dict) -> dict[str, str]:
    """Section 3b (fused against composed blocks)."""
    out = {}
    for r in b["sections"]["train_step"]["fusion"]:
        a = r["activation"]
        out[f"fusion_{a}_speedup"] = _x(r["speedup"])
        out[f"fusion_{a}_fused_mib"] = _mib(r["fused_memory"])
        out[f"fusion_{a}_unfused_mib"] = _mib(r["unfused_memory"])
    return out


def _epoch_and_loop(b: dict) -> dict[str, str]:
    """Section 4 (an epoch through fit against its steps alone) and 6 (scan against loop)."""
    s = b["sections"]
    return {
        "epoch_efficiency": _range([r["efficiency"] for r in s["epoch"]["rows"]]),
        "scan_over_loop": _range([r["scan_over_loop"] for r in s["loop_strategy"]["rows"]], 0),
    }


def _peer(b: dict) -> dict[str, str]:
    """Section 5: the PyTorch peer, XLA's defaults and the batch split over CPU devices."""
    peer = b["sections"]["torch_peer"]
    rows = {(r["framework"], r["activation"]): r for r in peer["rows"]}
    out = {
        "peer_relu_ms": f"{rows[('jax', 'relu')]['step_ms']:.2f} ms",
        "xla_defaults_relu_ms": f"{rows[('jax, XLA defaults', 'relu')]['step_ms']:.2f} ms",
        "torch_threads": str(peer["torch_threads"]),
    }
    for act in ("cpaf_relu", "cpaf_sigmoid"):
        out[f"peer_{act}_ratio"] = _x(rows[("jax", act)]["ratio_to_jax_relu"])
    for act in ("relu", "cpaf_relu", "cpaf_sigmoid"):
        out[f"xla_defaults_{act}_ratio"] = _x(rows[("jax, XLA defaults", act)]["ratio_to_jax_relu"])
    torch = next(r for (f, a), r in rows.items() if f.startswith("torch") and a == "relu")
    out["torch_relu_ms"] = f"{torch['step_ms']:.2f} ms"
    split = next(r for (f, a), r in rows.items() if f.startswith("jax, batch split"))
    out["batch_split_relu_ratio"] = _x(split["ratio_to_jax_relu"])
    # The round-to-round range of CPAF's ratio to ReLU, sections 2 and 5 together.
    step = b["sections"]["train_step"]["rows"]
    cpaf = [(r, "ratio") for r in step if r["network"].startswith("FashionNet")]
    cpaf = [(r, k) for r, k in cpaf if r["activation"] in ("cpaf_relu", "cpaf_sigmoid")]
    cpaf += [(rows[("jax", a)], "ratio_to_jax_relu") for a in ("cpaf_relu", "cpaf_sigmoid")]
    lo = min(r.get("ratio_lo", r[k]) for r, k in cpaf)
    hi = max(r.get("ratio_hi", r[k]) for r, k in cpaf)
    out["fmnist_cpaf_round_range"] = f"{lo:.1f} to {hi:.1f}"
    return out


def _sweep(sw: dict) -> dict[str, str]:
    """``benchmarks/sweep_throughput.json``: the loop strategy against sequential and vmap."""
    rows = sw["rows"]
    rates = [r["member_steps_per_second"] for r in rows if r["members"] >= 4]
    return {
        "sweep_loop_ratio": _range([r["ratio_to_sequential"]["loop"] for r in rows]),
        "sweep_loop_over_vmap_m4": _range([r["loop"] / r["vmap"] for r in rates], 1),
    }


_BENCH_PARTS = (_run, _steps, _fusion, _epoch_and_loop, _peer)

#: Every figure the docs may quote. A run that lacks a section (``--only``, no torch) gives
#: these names ``MISSING``, so the docs still build and say so where the figure would be.
NAMES = (
    "bench_machine", "bench_minutes", "bench_commit",
    "fmnist_relu_mib", "fmnist_cpaf_relu_ratio", "fmnist_cpaf_relu_mem_ratio",
    "fmnist_cpaf_sigmoid_ratio", "fmnist_cpaf_sigmoid_mem_ratio",
    "cifar_s1_cpaf_relu_ratio", "cifar_s2_cpaf_relu_ratio", "cifar_s3_cpaf_relu_ratio",
    "cifar_s1_cpaf_sigmoid_ratio", "cifar_s2_cpaf_sigmoid_ratio", "cifar_s3_cpaf_sigmoid_ratio",
    "cifar_unfused_cpaf_mem_ratio",
    "fusion_relu_speedup", "fusion_relu_fused_mib", "fusion_relu_unfused_mib",
    "fusion_cpaf_relu_speedup", "fusion_cpaf_relu_fused_mib", "fusion_cpaf_relu_unfused_mib",
    "fusion_cpaf_sigmoid_speedup", "fusion_cpaf_sigmoid_fused_mib",
    "fusion_cpaf_sigmoid_unfused_mib",
    "epoch_efficiency", "scan_over_loop",
    "peer_relu_ms", "xla_defaults_relu_ms", "torch_threads", "torch_relu_ms",
    "peer_cpaf_relu_ratio", "peer_cpaf_sigmoid_ratio", "xla_defaults_relu_ratio",
    "xla_defaults_cpaf_relu_ratio", "xla_defaults_cpaf_sigmoid_ratio",
    "batch_split_relu_ratio", "fmnist_cpaf_round_range",
    "sweep_loop_ratio", "sweep_loop_over_vmap_m4",
)  # fmt: skip
MISSING = "(not in the committed run)"


def figures(bench: dict | None = None, sweep: dict | None = None) -> dict[str, str]:
    """Name -> formatted figure, from the benchmark results (default: the committed JSONs).

    Args:
      bench: the contents of ``benchmarks/BENCHMARKS.json``.
      sweep: the contents of ``benchmarks/sweep_throughput.json``.

    Returns:
      every name in ``NAMES``; one whose section the run lacks is ``MISSING``.
    """
    if bench is None:
        bench = json.loads(BENCH_JSON.read_text())
    if sweep is None:
        sweep = json.loads(SWEEP_JSON.read_text())
    out = dict.fromkeys(NAMES, MISSING)
    for part, data in [(p, bench) for p in _BENCH_PARTS] + [(_sweep, sweep)]:
        try:
            out.update(part(data))
        except (KeyError, StopIteration, ValueError):  # section absent from this run
            pass
    return out


if __name__ == "__main__":
    for k, v in figures().items():
        print(f"{k:32s} {v}")
    print(os.path.relpath(BENCH_JSON), os.path.relpath(SWEEP_JSON))
