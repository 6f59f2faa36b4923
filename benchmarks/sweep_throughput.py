"""Sweep throughput (member-steps per second) against the sequential loop of the same members.

For M in 1, 2, 4, 8, 16, 32 FashionNet members (batch 128, ``relu`` and ``cpaf_relu``) it times
training steps of

* ``sequential``: the baseline, each member's state stepped with the jitted step ``fit``
  runs, one member after another on the default device (what M separate ``fit`` runs do);
* the sweep strategies ``vmap``, ``chunked`` (chunks of 4), ``loop`` and ``auto`` (whatever
  ``sweep_strategy.rule_strategy`` picks on this backend), through the sweep's executors, on
  the mesh ``python -m train`` gives a sweep (``sharding.sweep_mesh()``: on CPU one device per
  core, from ``sharding.split_cpu()``, so the loop runs members side by side);

after one warm-up (compile) step, best of ``--repeats`` round-robin timings of at least
``--steps`` steps and 40 member-steps each, and writes
``sweep_throughput.md`` (a table of member-steps/s and ratio to sequential) and
``sweep_throughput.json`` into ``--out``.

    python -m benchmarks.sweep_throughput [--out benchmarks] [--quick]
    python -m benchmarks.sweep_throughput --render   # the table again from the JSON
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time

import jax
import numpy as np

from cpaf_jax import compile_options
from cpaf_jax.data import load_dataset
from cpaf_jax.experiments.paper import build_member_states
from cpaf_jax.provenance import describe, provenance
from cpaf_jax.training import Member, member_epoch_indices
from cpaf_jax.training.executors import SweepProgram, make_executor, rule_strategy
from cpaf_jax.training.meshes import split_cpu, sweep_mesh
from cpaf_jax.training.state import row_step

KIND = "fashion_mnist"


def bench_one(ds, activation: str, m: int, steps: int, repeats: int, chunk: int) -> dict:
    """Member-steps/s of the sequential baseline and of each strategy for ``m`` members.

    Every candidate is compiled first; then ``repeats`` rounds time ``steps`` steps of each
    candidate in turn (round-robin, so a load spike on the shared machine hits all alike), and
    the best round counts.
    """
    members = [Member(seed=s, lr=1e-3) for s in range(m)]
    graphdef, tx, states = build_member_states(KIND, activation, members)
    n = len(ds.train_labels)
    n_steps = 1 + steps * repeats
    idx = member_epoch_indices([s.seed for s in members], 0, n, n_steps, 128)
    empty = np.zeros((1, 1, 28, 28, 1), np.float32), np.zeros((1, 1), np.int32)
    mesh = sweep_mesh()
    program = SweepProgram(
        graphdef,
        tx,
        ds.train_images,
        ds.train_labels,
        (*empty, np.ones((1, 1), np.float32)),
        mesh,
    )

    # Baseline: M independent runs one after another, each the program a single run runs (the
    # epoch's index table passed whole, the batch's row sliced inside the step).
    step = compile_options.jit(row_step(program.train_step), donate_argnums=(0,))
    images, labels = program.data_on(None)[:2]
    seq = [jax.tree.map(jax.numpy.copy, s) for s in states]
    perms = [jax.numpy.asarray(idx[j]) for j in range(m)]

    def seq_step(i):
        for j in range(m):
            seq[j] = step(seq[j], images, labels, perms[j], i)
        return seq

    auto_name, auto_c = rule_strategy(jax.default_backend(), m, program.n_devices)
    plans = {"vmap": ("vmap", m), "chunked": ("chunked", min(chunk, m)), "loop": ("loop", 1)}
    plans["auto"] = (auto_name, auto_c)
    runners = {"sequential": seq_step}
    for label, (name, c) in plans.items():
        ex = make_executor(program, m, name, c)
        ex.load(states)
        ex.set_epoch(idx)

        def ex_step(i, ex=ex):
            ex.step(i)
            return ex.chunks if hasattr(ex, "chunks") else ex.members

        runners[label] = ex_step
    for fn in runners.values():  # compile
        jax.block_until_ready(fn(0))
    best = {k: float("inf") for k in runners}
    for r in range(repeats):
        for label, fn in runners.items():
            t0 = time.perf_counter()
            for i in range(steps):
                out = fn(1 + r * steps + i)
            jax.block_until_ready(out)
            best[label] = min(best[label], (time.perf_counter() - t0) / steps)
    rates = {k: m / v for k, v in best.items()}
    return {
        "activation": activation,
        "members": m,
        "auto_choice": f"{auto_name}" + (f"(c={auto_c})" if auto_name == "chunked" else ""),
        "member_steps_per_second": rates,
        "ratio_to_sequential": {k: v / rates["sequential"] for k, v in rates.items()},
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks")
    ap.add_argument("--quick", action="store_true", help="M up to 8, fewer timed steps")
    ap.add_argument("--members", type=int, nargs="*", default=None)
    ap.add_argument("--activations", nargs="*", default=["relu", "cpaf_relu"])
    ap.add_argument("--steps", type=int, default=None, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--chunk", type=int, default=4)
    ap.add_argument(
        "--min-member-steps",
        type=int,
        default=40,
        help="at least this many member-steps per timed window (default 40)",
    )
    ap.add_argument(
        "--render",
        action="store_true",
        help="only rewrite sweep_throughput.md in --out from its sweep_throughput.json",
    )
    args = ap.parse_args(argv)
    if args.render:
        with open(os.path.join(args.out, "sweep_throughput.json")) as f:
            text = markdown(json.load(f))
        with open(os.path.join(args.out, "sweep_throughput.md"), "w") as f:
            f.write(text)
        return
    ms = args.members or ([1, 2, 4, 8] if args.quick else [1, 2, 4, 8, 16, 32])
    steps = args.steps or (3 if args.quick else 5)
    repeats = args.repeats or 5
    split_cpu()

    ds = load_dataset("fashion_mnist")
    # Throughput does not depend on N: keep 16384 images (128 batches) device-resident.
    ds_small = dataclasses.replace(
        ds, train_images=ds.train_images[:16384], train_labels=ds.train_labels[:16384]
    )
    rows = []
    for act in args.activations:
        for m in ms:
            # At least --min-member-steps per timed window: with one member, a few 17 ms steps
            # are too short a window to tell a program from itself on a shared machine.
            m_steps = min(max(steps, -(-args.min_member_steps // m)), (16384 // 128 - 1) // repeats)
            row = bench_one(ds_small, act, m, m_steps, repeats, args.chunk)
            rows.append(row)
            r = row["ratio_to_sequential"]
            print(
                f"{act:10s} M={m:3d} seq {row['member_steps_per_second']['sequential']:7.1f}/s  "
                + "  ".join(f"{k} x{v:.2f}" for k, v in r.items() if k != "sequential"),
                flush=True,
            )

    os.makedirs(args.out, exist_ok=True)
    meta = {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "sweep_mesh_devices": len(jax.local_devices()),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "batch_size": 128,
        "model": KIND,
        "steps": steps,
        "repeats": repeats,
        "chunk": args.chunk,
        "quick": args.quick,
        "load_average": list(os.getloadavg()),
    }
    # The command that reproduces the table (argv given: as if typed), commit and machine.
    cmd = None if argv is None else ["python", "-m", "benchmarks.sweep_throughput", *argv]
    data = {"provenance": provenance(cmd), "meta": meta, "rows": rows}
    with open(os.path.join(args.out, "sweep_throughput.json"), "w") as f:
        json.dump(data, f, indent=2)
    text = markdown(data)
    with open(os.path.join(args.out, "sweep_throughput.md"), "w") as f:
        f.write(text)
    print(text, end="")


def markdown(data: dict) -> str:
    """``sweep_throughput.md`` from the JSON ``main`` writes (re-rendered in CI, byte for byte)."""
    meta, rows = data["meta"], data["rows"]
    cols = ["sequential", "vmap", "chunked", "loop", "auto"]
    lines = [
        f"# Sweep throughput ({meta['backend']}, {meta['cpus']} CPUs, FashionNet, batch 128)",
        "",
        describe(data.get("provenance")),
        "",
        "member-steps/s, and in brackets the ratio to the sequential loop of the same members",
        "(each member its own jitted step on the default device, one after another: what M",
        "separate runs do). The strategies run on the sweep mesh of "
        f"{meta['sweep_mesh_devices']} device(s);",
        # Runs before "chunk" was recorded used the default, 4.
        f"chunked = chunks of {meta.get('chunk', 4)}; auto = the rule's choice on this backend.",
        "",
        "| activation | M | auto picks | " + " | ".join(cols) + " |",
        "|---|---:|---|" + "---:|" * len(cols),
    ]
    for row in rows:
        rate, ratio = row["member_steps_per_second"], row["ratio_to_sequential"]
        cells = [f"{rate[c]:.1f} ({ratio[c]:.2f})" for c in cols]
        lines.append(
            f"| {row['activation']} | {row['members']} | {row['auto_choice']} | "
            + " | ".join(cells)
            + " |"
        )
    lines += ["", f"load average during the run: {list(meta['load_average'])}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
