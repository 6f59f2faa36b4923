"""Table 6 (training time) in the report: the paper's per-epoch cost of CPAF beside ours per
training step, read from ``benchmarks/BENCHMARKS.json`` (section 2 of ``BENCHMARKS.md``), with
what differs between the two measurements.
"""

from __future__ import annotations

import json

#: The paper's Table 6: seconds for 100 epochs of CIFAR Structure 1.
PAPER_TABLE6 = {
    "cifar10": {"tanh": 610, "cpaf_sigmoid": 875, "relu": 601, "cpaf_relu": 866},
    "cifar100": {"tanh": 617, "cpaf_sigmoid": 865, "relu": 601, "cpaf_relu": 881},
}
#: (CPAF row, the base it is compared with) as the paper's table pairs them.
TIME_PAIRS = (("cpaf_relu", "relu"), ("cpaf_sigmoid", "tanh"))
NETWORK = "CifarNet S1"


def paper_ratios() -> dict[tuple[str, str], list[float]]:
    """The paper's per-epoch time ratios (CPAF / its base), one per dataset."""
    return {(x, y): [t[x] / t[y] for t in PAPER_TABLE6.values()] for x, y in TIME_PAIRS}


def step_rows(bench: dict) -> dict[str, dict]:
    """Structure 1's training-step rows of a ``BENCHMARKS.json`` by activation."""
    rows = bench["sections"]["train_step"]["rows"]
    return {r["activation"]: r for r in rows if r["network"].startswith(NETWORK)}


def our_ratio(s1: dict[str, dict], x: str, y: str) -> tuple[float, float, float] | None:
    """Our step-time ratio ``x / y`` (median, low, high over rounds): the benchmark's own
    ratio to ReLU where ``y`` is ReLU, else the ratio of the two step times (no range)."""
    if x not in s1 or y not in s1:
        return None
    if y == "relu":
        r = s1[x]
        return r["ratio"], r.get("ratio_lo", r["ratio"]), r.get("ratio_hi", r["ratio"])
    q = s1[x]["step_ms"] / s1[y]["step_ms"]
    return q, q, q


def _ours(s1: dict[str, dict], x: str, y: str) -> str:
    got = our_ratio(s1, x, y)
    if got is None:
        return "-"
    mid, lo, hi = got
    return f"{mid:.2f}" + ("" if lo == hi else f" [{lo:.2f}, {hi:.2f}]")


def table6_section(bench_json: str) -> list[str]:
    """The paper's Table 6 ratios beside our step ratios, with the caveats."""
    lines = ["## Training time (Table 6)", ""]
    try:
        with open(bench_json) as f:
            bench = json.load(f)
        s1, machine = step_rows(bench), bench["machine"]
    except (OSError, ValueError, KeyError):
        return lines + ["No benchmark results (`python -m benchmarks` writes "
                        "`benchmarks/BENCHMARKS.json`).", ""]  # fmt: skip
    paper = paper_ratios()
    lines += ["| CPAF / base | paper, per epoch (CIFAR-10, CIFAR-100) | ours, per training step "
              "(median [range over rounds]) |", "|---|---|---|"]  # fmt: skip
    for x, y in TIME_PAIRS:
        cells = ", ".join(f"{q:.2f}" for q in paper[(x, y)])
        lines.append(f"| {x} / {y} | {cells} | {_ours(s1, x, y)} |")
    commit = (bench.get("provenance") or {}).get("commit") or ""
    at = f", commit `{commit[:12]}`" if commit else ""
    lines += ["", "Per step here against per epoch in the paper: " + reading(s1), "",
              caveats(machine, at), ""]  # fmt: skip
    return lines


def caveats(machine: dict, at: str) -> str:
    """What differs between the paper's timing and ours."""
    load = machine.get("load_average")
    busy = f" (load average {load[0]:.1f} at start)" if load else ""
    return (
        "Ours: section 2 of `BENCHMARKS.md`, Structure 1, one jitted training step on random "
        f"data, on {machine['cpu_model']} with {machine['cpu_count']} CPU cores{busy}, JAX{at}. "
        "The paper's: wall time of 100 epochs in its own implementation, on hardware it does "
        "not name. The two are not the same measurement: an epoch adds data loading and "
        "evaluation (which do not grow with the activation, so they pull a per-epoch ratio "
        "towards 1: the paper's ratio per step would be at least its ratio per epoch), while a "
        "framework's fusion and kernels decide what a pointwise activation costs, so the ratio "
        "moves with hardware and framework. The to-accuracy rows of Table 6 need the CIFAR "
        "runs, not made here."
    )


def reading(s1: dict[str, dict]) -> str:
    """Per pair: whether our step ratio is below, within or above the paper's epoch ratios."""
    parts = []
    for (x, y), ratios in paper_ratios().items():
        got = our_ratio(s1, x, y)
        if got is None:
            continue
        where = ("below" if got[0] < min(ratios) else "above" if got[0] > max(ratios)
                 else "within")  # fmt: skip
        more = "more" if got[0] > 1 else "no more"
        parts.append(f"{x} costs {more} than {y} per step here, {got[0]:.2f}x, {where} the "
                     f"paper's {min(ratios):.2f}-{max(ratios):.2f}x per epoch")  # fmt: skip
    return "; ".join(parts) + "." if parts else ""
