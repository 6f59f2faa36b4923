"""The accelerator check: ``python -m benchmarks.device_check [--smoke] [--out DIR]``.

Run once on a machine with a GPU (or TPU); in under 8 minutes it

1. runs the core tests (``tests/ops/test_functional.py``, ``tests/ops/test_fused_pool.py``) on that
   backend, in a subprocess;
2. times the training step of FashionNet (the library's fused blocks) and of the user-written
   4.2 network (section 2b) with ReLU, CPAF-ReLU and CPAF-sigmoid, interleaved, and their
   compiled memory, each as a ratio to ReLU's (goal there: CPAF step <= 1.10x ReLU);
3. measures sweep throughput for M = 1, 2, 4, ..., 64 FashionNet members, ``vmap`` against
   ``loop`` (goal: 64 members under ``vmap`` >= 10x the loop's member-steps per second);
4. trains through the multi-device paths on every device of the backend, members split over a
   mesh (``vmap`` inside ``shard_map``) and one member's batch split (``data_parallel``), and
   compares each with the same members one after another on one device;

and writes ``DEVICE.md`` and ``DEVICE.json`` into ``--out`` (default ``benchmarks/``). Each
part gets a share of the time budget and the run records what it skipped. ``--smoke`` runs
every part at toy size on any backend (the test suite runs it on CPU) and writes nothing
outside ``--out``; on CPU it splits the host into 2 devices so the mesh paths have two.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import types

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE_TESTS = ("tests/ops/test_functional.py", "tests/ops/test_fused_pool.py")
BUDGET_S = 8 * 60


def core_tests(smoke: bool, timeout_s: float) -> dict:
    """Runs the core tests in a subprocess on this machine's default backend."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *CORE_TESTS]
    if smoke:
        cmd += ["-k", "unbroadcast_many"]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, env=os.environ
        )
        tail, rc = done.stdout.strip().splitlines()[-1:] or [""], done.returncode
    except subprocess.TimeoutExpired:
        tail, rc = [f"timed out after {timeout_s:.0f} s"], None
    return {
        "command": " ".join(cmd[1:]),
        "returncode": rc,
        "summary": tail[0],
        "seconds": time.perf_counter() - t0,
    }


def step_ratios(smoke: bool) -> dict:
    """FashionNet's step (fused blocks) and the user-written 4.2 network's, per activation."""
    from benchmarks import train_step, user_network
    from benchmarks.timing import interleaved_samples

    mode = "smoke" if smoke else "quick"
    batch = 32 if smoke else 128
    acts = ("relu", "cpaf_sigmoid") if smoke else ("relu", "cpaf_relu", "cpaf_sigmoid")
    repeats, iters = (1, 2) if smoke else (7, 10)
    rows = []
    for net in ("FashionNet (fused blocks)", "4.2 network, plain JAX"):
        if net.startswith("FashionNet"):
            runners = {
                a: train_step.StepRunner("fashion_mnist", a, batch, (28, 28, 1), "adam")
                for a in acts
            }
            mem = {a: r.memory()["total"] for a, r in runners.items()}
        else:
            runners = {a: user_network.UserStep(net, a, batch) for a in acts}
            mem = {a: r.memory() for a, r in runners.items()}
        samples = interleaved_samples(runners, repeats=repeats, iters=iters, warmup=2)
        rows += user_network.step_rows(net, batch, samples, mem)
    return {"mode": mode, "rows": rows}


def sweep_rows(members: list[int], steps: int, repeats: int, deadline: float) -> dict:
    """Member-steps/s of ``vmap`` and ``loop`` sweeps per M, through the sweep benchmark.

    The one place that calls the sweep API (``benchmarks.sweep_throughput.bench_one``); the
    data are random, shaped like Fashion-MNIST, so no dataset is needed on the machine.
    """
    from benchmarks import sweep_throughput

    rng = np.random.default_rng(0)
    n = 128 * (1 + steps * repeats + 1)
    ds = types.SimpleNamespace(
        train_images=rng.normal(size=(n, 28, 28, 1)).astype(np.float32),
        train_labels=rng.integers(0, 10, n).astype(np.int32),
    )
    rows, skipped = [], []
    for m in members:
        if time.perf_counter() > deadline:
            skipped.append(m)
            continue
        r = sweep_throughput.bench_one(ds, "cpaf_relu", m, steps, repeats, chunk=4)
        rate = r["member_steps_per_second"]
        rows.append(
            {
                "members": m,
                "vmap": rate["vmap"],
                "loop": rate["loop"],
                "sequential": rate["sequential"],
                "vmap_over_loop": rate["vmap"] / rate["loop"],
            }
        )
    return {"activation": "cpaf_relu", "rows": rows, "skipped_members": skipped}


def _random_data(n: int, n_test: int) -> types.SimpleNamespace:
    rng = np.random.default_rng(0)
    return types.SimpleNamespace(
        train_images=rng.normal(size=(n, 28, 28, 1)).astype(np.float32),
        train_labels=rng.integers(0, 10, n).astype(np.int32),
        test_images=rng.normal(size=(n_test, 28, 28, 1)).astype(np.float32),
        test_labels=rng.integers(0, 10, n_test).astype(np.int32),
    )


def mesh_paths(smoke: bool) -> dict:
    """The engine over every device (``member_mesh``, ``data_mesh``) against ``loop`` on one
    device: strategy, devices, seconds and the largest test-loss difference per path."""
    from cpaf_jax.experiments.paper import build_member_model
    from cpaf_jax.training import Member, TrainConfig, train
    from cpaf_jax.training.meshes import data_mesh, member_mesh

    d = jax.device_count()
    batch, steps, n_test = 16 * d, 2 if smoke else 8, 64 if smoke else 512
    ds = _random_data(batch * steps, n_test)
    members = [Member(seed=s, lr=1e-3) for s in range(d if smoke else 2 * d)]

    def run(members, strategy, mesh):
        cfg = TrainConfig(
            epochs=1, batch_size=batch, eval_batch_size=n_test, progress=False, strategy=strategy
        )
        t0 = time.perf_counter()
        res = train(
            members,
            lambda m: build_member_model("fashion_mnist", "cpaf_relu", m),
            ds,
            cfg,
            mesh=mesh,
        )
        return res, time.perf_counter() - t0

    ref, ref_s = run(members, "loop", None)
    rows = [
        {
            "path": "loop, one device",
            "strategy": ref.strategy,
            "devices": 1,
            "seconds": ref_s,
            "max_loss_diff": 0.0,
        }
    ]
    for path, subset, strategy, mesh in (
        ("members split over a mesh", members, "vmap", member_mesh()),
        ("batch split over a mesh", members[:1], "data_parallel", data_mesh()),
    ):
        res, secs = run(subset, strategy, mesh)
        diff = np.max(np.abs(res.test_loss - ref.test_loss[: len(subset)]))
        rows.append(
            {
                "path": path,
                "strategy": res.strategy,
                "devices": d,
                "seconds": secs,
                "max_loss_diff": float(diff),
            }
        )
    return {"activation": "cpaf_relu", "members": len(members), "rows": rows}


def markdown(res: dict) -> str:
    out = [
        "# Accelerator check",
        "",
        f"Backend `{res['backend']}` ({res['device_kind']}, {res['device_count']} device(s)); "
        f"jax {res['jax']}; mode `{res['mode']}`; {res['seconds']:.0f} s in all. Written by "
        "`python -m benchmarks.device_check`.",
        "",
        "## Core tests",
        "",
        f"`{res['tests']['command']}`: {res['tests']['summary']} "
        f"(exit {res['tests']['returncode']}, {res['tests']['seconds']:.0f} s).",
        "",
        "## Training step, ratio to ReLU (goal: CPAF <= 1.10x)",
        "",
        "| network | activation | batch | step ms | / ReLU [range] | memory MiB | memory / ReLU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["steps"]["rows"]:
        out.append(
            f"| {r['network']} | {r['activation']} | {r['batch']} | {r['step_ms']:.2f} | "
            f"{r['ratio']:.2f} [{r['ratio_lo']:.2f}, {r['ratio_hi']:.2f}] | "
            f"{r['memory'] / 2**20:.2f} | {r['mem_ratio']:.2f} |"
        )
    sw = res["sweep"]
    out += [
        "",
        f"## Sweep throughput, {sw['activation']} FashionNet members (goal: vmap at M = 64 "
        ">= 10x loop)",
        "",
        "| M | vmap member-steps/s | loop | sequential | vmap / loop |",
        "|---|---|---|---|---|",
    ]
    for r in sw["rows"]:
        out.append(
            f"| {r['members']} | {r['vmap']:.1f} | {r['loop']:.1f} | {r['sequential']:.1f} | "
            f"{r['vmap_over_loop']:.2f} |"
        )
    if sw["skipped_members"]:
        out += ["", f"Skipped for time: M = {sw['skipped_members']}."]
    mp = res["mesh"]
    out += [
        "",
        f"## Multi-device paths, {mp['members']} {mp['activation']} FashionNet members "
        "(goal: test loss as on one device, to float rounding)",
        "",
        "| path | strategy | devices | seconds | max test-loss difference |",
        "|---|---|---|---|---|",
    ]
    for r in mp["rows"]:
        out.append(
            f"| {r['path']} | {r['strategy']} | {r['devices']} | {r['seconds']:.1f} | "
            f"{r['max_loss_diff']:.2e} |"
        )
    return "\n".join(out) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.device_check", description=__doc__)
    p.add_argument("--smoke", action="store_true", help="toy sizes, any backend")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks"))
    args = p.parse_args(argv)
    if args.smoke:
        from cpaf_jax.training.meshes import split_cpu

        split_cpu(2)  # before JAX's first computation; only the CPU client gets the devices
    t0 = time.perf_counter()
    dev = jax.devices()[0]
    if not args.smoke and dev.platform == "cpu":
        print("[device_check] no accelerator here; on CPU run with --smoke", flush=True)
    res = {
        "mode": "smoke" if args.smoke else "full",
        "backend": jax.default_backend(),
        "device_kind": dev.device_kind,
        "device_count": jax.device_count(),
        "jax": jax.__version__,
    }
    print("[device_check] core tests...", flush=True)
    res["tests"] = core_tests(args.smoke, timeout_s=120 if args.smoke else 0.4 * BUDGET_S)
    print(f"[device_check] {res['tests']['summary']}; step ratios...", flush=True)
    res["steps"] = step_ratios(args.smoke)
    print("[device_check] sweep throughput...", flush=True)
    members = [2] if args.smoke else [1, 2, 4, 8, 16, 32, 64]
    steps, repeats = (1, 1) if args.smoke else (5, 3)
    res["sweep"] = sweep_rows(members, steps, repeats, t0 + 0.85 * BUDGET_S)
    print("[device_check] multi-device paths...", flush=True)
    res["mesh"] = mesh_paths(args.smoke)
    res["seconds"] = time.perf_counter() - t0
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "DEVICE.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    with open(os.path.join(args.out, "DEVICE.md"), "w") as f:
        f.write(markdown(res))
    print(f"[device_check] wrote {args.out}/DEVICE.md and DEVICE.json", flush=True)
    return res


if __name__ == "__main__":
    main()
