"""Writes the suite's results as ``BENCHMARKS.md`` (tables) and JSON (everything)."""

from __future__ import annotations

import json
import os
import sys

from cpaf_jax.provenance import describe

SECTIONS = ("activation", "train_step", "memory", "epoch", "torch_peer", "loop_strategy")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _f(x, nd=2):
    return f"{x:.{nd}f}"


def _spread(r: dict, key: str, lo: str = "ratio_lo", hi: str = "ratio_hi") -> str:
    """``median [lo, hi]`` of a ratio measured over rounds (older results: the ratio alone)."""
    if lo not in r:
        return _f(r[key])
    return f"{r[key]:.2f} [{r[lo]:.2f}, {r[hi]:.2f}]"


def markdown(results: dict) -> str:
    m = results["machine"]
    v = m["versions"]
    out = [
        "# cpaf-jax benchmarks",
        "",
        describe(results.get("provenance")),
        "",
        f"Mode `{results['mode']}`; {m['cpu_model']}, {m['cpu_count']} cores (load average at "
        f"start {m['load_average']}); backend {m['backend']} ({m['device_kind']}); jax "
        f"{v['jax']}, jaxlib {v['jaxlib']}, flax {v['flax']}, optax {v['optax']}, torch "
        f"{v['torch']}. Raw numbers: `{results.get('json_path', 'BENCHMARKS.json')}`; rerun with "
        "`python -m benchmarks` (`--quick` for a shorter run).",
        "",
        "Variants are timed interleaved in one process, in repeated rounds; times are the "
        "minimum over rounds. Ratios to ReLU are taken within each round and given as the "
        "median with the range over rounds in brackets; absolute times move with the machine's "
        "load. Programs are compiled with `cpaf_jax.compile_options` "
        f"({results.get('compiler_options') or 'XLA defaults'}).",
        "",
    ]
    s = results["sections"]
    if "activation" in s:
        out += [
            "## 1. Activation alone (FashionNet shapes, float32)",
            "",
            "Forward, and forward+backward (gradients for the input and any parameters), "
            "ratio to ReLU at the same shape. CPAF default implementation unless named.",
            "",
        ]
        rows = [
            [
                r["shape"],
                r["name"],
                _f(r["forward_ms"], 3),
                _f(r["forward_ratio"]),
                _f(r["fwd_bwd_ms"], 3),
                _f(r["fwd_bwd_ratio"]),
            ]
            for r in s["activation"]["rows"]
        ]
        out += [
            _table(
                ["shape", "activation", "fwd ms", "fwd / ReLU", "fwd+bwd ms", "fwd+bwd / ReLU"],
                rows,
            ),
            "",
        ]
    if "train_step" in s:
        out += [
            "## 2. Training step of each paper network",
            "",
            "Jitted, donated `make_train_step` on random data; ratio to ReLU's step in the "
            "same rounds (median [range]).",
            "",
        ]
        rows = [
            [
                r["network"],
                r["activation"],
                r["batch"],
                r["optimizer"],
                _f(r["step_ms"]),
                _spread(r, "ratio"),
                f"{r['images_per_s']:,.0f}",
            ]
            for r in s["train_step"]["rows"]
        ]
        out += [
            _table(
                ["network", "activation", "batch", "optimizer", "step ms", "/ ReLU", "images/s"],
                rows,
            ),
            "",
        ]
        out += [
            "## 3. Compiled memory of each training step",
            "",
            "`memory_analysis()` of the step with a one-batch dataset: temp + argument + "
            "output - alias, ratio to ReLU.",
            "",
        ]
        rows = [
            [
                r["network"],
                r["activation"],
                f"{r['memory']['temp'] / 2**20:.2f}",
                f"{r['memory']['argument'] / 2**20:.2f}",
                f"{r['memory']['output'] / 2**20:.2f}",
                f"{r['memory']['total'] / 2**20:.2f}",
                _f(r["mem_ratio"]),
                _f(r["temp_ratio"]),
            ]
            for r in s["train_step"]["rows"]
        ]
        out += [
            _table(
                [
                    "network",
                    "activation",
                    "temp MiB",
                    "argument MiB",
                    "output MiB",
                    "total MiB",
                    "total / ReLU",
                    "temp / ReLU",
                ],
                rows,
            ),
            "",
        ]
    if s.get("train_step", {}).get("fusion"):
        out += [
            "### 3b. What the fused conv-bias + activation + pool blocks buy",
            "",
            "FashionNet built with `fuse_pooling=True` (the default, "
            "`cpaf_jax.ops.fused_pool.activation_max_pool_2x2`) and `False` (conv, activation and "
            "pool composed), timed interleaved: unfused step time / fused (median [range] over "
            "rounds) and compiled memory of each.",
            "",
        ]
        rows = [
            [
                r["network"],
                r["activation"],
                _f(r["fused_ms"]),
                _f(r["unfused_ms"]),
                _spread(r, "speedup", "speedup_lo", "speedup_hi"),
                f"{r['fused_memory'] / 2**20:.2f}",
                f"{r['unfused_memory'] / 2**20:.2f}",
            ]
            for r in s["train_step"]["fusion"]
        ]
        out += [
            _table(
                [
                    "network",
                    "activation",
                    "fused ms",
                    "unfused ms",
                    "unfused / fused",
                    "fused MiB",
                    "unfused MiB",
                ],
                rows,
            ),
            "",
        ]
    if s.get("train_step", {}).get("terms"):
        out += [
            "### 3c. CPAF-sigmoid's terms: recomputed in the backward pass or kept",
            "",
            "FashionNet with CPAF-sigmoid. `recomputed` (the default): the fused blocks keep "
            "the pre-activation and recompute the k = 2 terms in the backward pass, a loop over "
            "two halves of the batch. `kept`: they keep the terms from the forward pass and "
            "sum the parameter gradients in one pass over the batch "
            "(`cpaf_jax.ops.fused_pool._KEEP_TERMS`, the previous default). Timed interleaved with "
            "ReLU's step: step time / ReLU's (median [range] over rounds) and compiled step "
            "memory.",
            "",
        ]
        rows = [
            [
                r["network"],
                r["variant"],
                _f(r["step_ms"]),
                _spread(r, "ratio", "ratio_lo", "ratio_hi"),
                f"{r['memory'] / 2**20:.2f}",
                f"{r['mem_ratio']:.2f}",
            ]
            for r in s["train_step"]["terms"]
        ]
        out += [
            _table(
                ["network", "variant", "step ms", "time / ReLU", "memory MiB", "memory / ReLU"],
                rows,
            ),
            "",
        ]
    if "epoch" in s:
        e = s["epoch"]
        out += [
            "## 4. Epoch through `loop.fit` against the step alone",
            "",
            f"Fashion-MNIST from `{e['dataset']}`, {e['train_images']:,} training images, "
            "batch 128, Adam; four epochs of `fit` (evaluation excluded), each followed at once "
            "by the step alone for the same number of steps, placed as fit placed it. "
            "Efficiency: the median over epochs 2-4 of (step-alone time / epoch time), with "
            "its range; images/s over those epochs. Ratios above 1 are noise.",
            "",
        ]
        rows = [
            [
                r["activation"],
                f"{r['fit_images_per_s']:,.0f}",
                f"{r['step_images_per_s']:,.0f}",
                _spread(r, "efficiency", "efficiency_lo", "efficiency_hi"),
            ]
            for r in e["rows"]
        ]
        out += [
            _table(["activation", "fit images/s", "step alone images/s", "efficiency"], rows),
            "",
        ]
    if "torch_peer" in s:
        t = s["torch_peer"]
        out += ["## 5. PyTorch eager peer (FashionNet, Adam)", ""]
        if not t["available"]:
            out += ["torch is not installed; section skipped.", ""]
        else:
            out += [
                f"torch {t['torch_version']}, `torch.set_num_threads({t['torch_threads']})`;"
                " NCHW; CPAF as a plain PyTorch module with per-element `a`, `b` "
                "`[*F, 2]`. `jax` rows: one JAX device using every core (what `fit` runs "
                "by default); `batch split` rows: the batch split over one CPU device per core "
                "(the engine's `data_parallel` strategy); `XLA defaults` rows: the `jax` step "
                "compiled without `cpaf_jax.compile_options`.",
                "",
            ]
            rows = [
                [
                    r["framework"],
                    r["activation"],
                    r["batch"],
                    _f(r["step_ms"]),
                    _spread(r, "ratio_to_jax_relu"),
                ]
                for r in t["rows"]
            ]
            out += [_table(["framework", "activation", "batch", "step ms", "/ JAX ReLU"], rows), ""]
    if "loop_strategy" in s:
        ls = s["loop_strategy"]
        out += [
            "## 6. Loop strategy",
            "",
            f"Dispatch of a trivial jitted step: {ls['dispatch_us']:.1f} us per call "
            f"({ls['backend']}).",
            "",
        ]
        rows = [
            [
                r["activation"],
                r["n_steps"],
                _f(r["loop_ms_per_step"]),
                _f(r["scan_ms_per_step"]),
                _f(r["scan_over_loop"]),
            ]
            for r in ls["rows"]
        ]
        out += [
            _table(
                ["activation", "steps", "Python loop ms/step", "lax.scan ms/step", "scan / loop"],
                rows,
            ),
            "",
            f"Faster on this backend: **{ls['faster']}**. `loop.fit` uses the Python loop; "
            "on GPU/TPU, where per-step dispatch is a larger share of a step, scan may win "
            "and should be re-measured there (no accelerator was available here).",
            "",
        ]
    if results.get("notes"):
        out += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    return "\n".join(out)


def write(results: dict, md_path: str, json_paths: list[str]) -> None:
    """Writes the markdown to ``md_path`` and the JSON to every path in ``json_paths``."""
    for p in [md_path, *json_paths]:
        os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)
    results = dict(
        results, json_path=os.path.relpath(json_paths[0], os.path.dirname(os.path.abspath(md_path)))
    )
    # Rendered from the JSON as written, so re-rendering the committed JSON gives the same bytes.
    results = json.loads(json.dumps(results, default=str))
    with open(md_path, "w") as f:
        f.write(markdown(results))
    for p in json_paths:
        with open(p, "w") as f:
            json.dump(results, f, indent=1, default=str)


def render(json_path: str, md_path: str) -> None:
    """Rewrites ``md_path`` from the results at ``json_path``, running nothing."""
    with open(json_path) as f:
        text = markdown(json.load(f))
    with open(md_path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    # python -m benchmarks.report [JSON [MD]]: BENCHMARKS.md again from BENCHMARKS.json.
    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    _args = sys.argv[1:] + [None, None]
    render(
        _args[0] or os.path.join(_root, "benchmarks", "BENCHMARKS.json"),
        _args[1] or os.path.join(_root, "BENCHMARKS.md"),
    )
