"""``python -m benchmarks [--quick | --smoke] [--out DIR] [--only SECTION ...]``.

Every JSON records ``cpaf_jax.provenance.provenance()`` (commit, dirty flag, machine, command)
under ``"provenance"``; ``python -m benchmarks.report`` re-renders ``BENCHMARKS.md`` from it.
Without ``--out`` it writes ``BENCHMARKS.md`` at the repository root, the JSON it cites at
``benchmarks/BENCHMARKS.json`` and a time-stamped copy under ``benchmarks/results/``. With
``--out DIR`` both files go to ``DIR``.
"""

from __future__ import annotations

import argparse
import os
import time

from benchmarks import (
    activation,
    epoch,
    layer_table,
    loop_strategy,
    machine,
    report,
    torch_peer,
    train_step,
    user_network,
)
from cpaf_jax import compile_options
from cpaf_jax.provenance import provenance
from cpaf_jax.training.meshes import split_cpu

_RUNNERS = {
    "activation": activation.run,
    "layer_table": layer_table.run,
    "train_step": train_step.run,  # also the memory section
    "user_network": user_network.run,
    "epoch": epoch.run,
    "torch_peer": torch_peer.run,
    "loop_strategy": loop_strategy.run,
}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="fewer rounds, steps and images")
    g.add_argument("--smoke", action="store_true", help="tiny; checks the suite runs")
    p.add_argument("--out", help="directory for BENCHMARKS.md and BENCHMARKS.json")
    p.add_argument("--only", nargs="+", choices=sorted(_RUNNERS), help="run these sections")
    args = p.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    # One JAX device per core, as python -m train has: single-device rows run on device 0 as
    # before; the rows that say so split the batch over all of them.
    split_cpu()
    results = {"mode": mode, "machine": machine.describe(), "sections": {}, "seconds": {}}
    # Commit, dirty flag, machine and the command that reproduces this run (argv given: as if
    # typed), taken before the sections run.
    results["provenance"] = provenance(
        None if argv is None else ["python", "-m", "benchmarks", *argv]
    )
    results["compiler_options"] = compile_options.compiler_options()
    for name, fn in _RUNNERS.items():
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        print(f"[benchmarks] {name} ({mode})...", flush=True)
        results["sections"][name] = fn(mode)
        results["seconds"][name] = time.perf_counter() - t0
    if "train_step" in results["sections"]:
        results["sections"]["memory"] = {"in": "train_step rows, key 'memory'"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if args.out:
        md, js = (
            os.path.join(args.out, "BENCHMARKS.md"),
            [os.path.join(args.out, "BENCHMARKS.json")],
        )
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        md = os.path.join(root, "BENCHMARKS.md")
        js = [
            os.path.join(root, "benchmarks", "BENCHMARKS.json"),
            os.path.join(root, "benchmarks", "results", f"{mode}-{stamp}.json"),
        ]
    report.write(results, md, js)
    print(f"[benchmarks] wrote {md} and {js[0]}", flush=True)
    return results


if __name__ == "__main__":
    main()
