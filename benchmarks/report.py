"""Writes the suite's results as ``BENCHMARKS.md`` (tables) and JSON (everything)."""

from __future__ import annotations

import json
import os
import sys

from cpaf_jax.provenance import describe

SECTIONS = (
    "activation",
    "layer_table",
    "train_step",
    "user_network",
    "memory",
    "epoch",
    "torch_peer",
    "loop_strategy",
)


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


def goals(sections: dict) -> list[list[str]]:
    """The performance goals against what the run measured: ``[measure, measured, goal]`` rows."""
    out = []
    lt = sections.get("layer_table")
    if lt:
        # The goals are those of the package's own compilation (rows before both were
        # measured have no "jit").
        rows = [r for r in lt["rows"] if r.get("jit", "cpaf_jax.jit") == "cpaf_jax.jit"]
        default = {(r["base"], r["sharing"], r["k"]): r for r in rows if r["variant"] == "default"}
        for base, goal in (("relu", "<= 1.5x"), ("sigmoid", "<= 3.0x")):
            r = default.get((base, "element", 2))
            if r:
                out.append(
                    [f"layer k=2 per element, {base} base / jax.nn.relu", _spread(r, "ratio"), goal]
                )
        k8 = [r for r in default.values() if r["k"] == 8 and "to_k2" in r]
        if k8:
            worst = max(k8, key=lambda r: r["to_k2"])
            out.append(
                [
                    "layer k=8 / k=2, worst base and sharing",
                    f"{worst['to_k2']:.2f} ({worst['base']}, {worst['sharing']})",
                    "<= 4.5x",
                ]
            )
        # The implementations a user can choose (not the ReLU base's kernel row).
        others = [r for r in rows if "to_default" in r and r["variant"] != "kernel"]
        if others:
            fastest = min(others, key=lambda r: r["to_default"])
            out.append(
                [
                    "other implementation / default, fastest other",
                    f"{fastest['to_default']:.2f} ({fastest['variant']}, {fastest['base']}, "
                    f"{fastest['sharing']})",
                    ">= 1 (default never slower)",
                ]
            )
    for r in sections.get("user_network", {}).get("rows", []):
        if r["network"].startswith("4.2") and r["activation"] != "relu":
            jit = r.get("jit", "cpaf_jax.jit")
            relu_base = r["activation"].startswith("cpaf_relu")
            goal = _STEP_GOALS[jit][0 if relu_base else 1]
            what = f"4.2 network step under {jit}, {r['activation']} / relu"
            out.append([what, _spread(r, "ratio"), goal])
            out.append(
                [
                    f"4.2 network step memory under {jit}, {r['activation']} / relu",
                    _f(r["mem_ratio"]),
                    "<= 1.25x",
                ]
            )
    return out


#: Step-time goals of the plain-JAX 4.2 network: ``jit -> (ReLU base, other bases)``.
_STEP_GOALS = {"jax.jit": ("<= 1.15x", "<= 1.25x"), "cpaf_jax.jit": ("<= 1.10x", "<= 1.15x")}


def _layer_table(lt: dict) -> list[str]:
    out = [
        f"### 1b. The CPAF layer for k = 1..8, every base and sharing ({lt['shape']}, float32)",
        "",
        "Gradient of `sum(cpaf(y, a, b) * g)` for `y`, `a`, `b` (forward+backward; the forward "
        "value is not used, but on CPU the sigmoid and tanh bases' forward still writes it "
        "together with `y`: here `y` is an input, so that copies it, where in a network `y` is "
        "usually computed, a convolution plus its bias, and one pass writes both), interleaved "
        "with `jax.nn.relu`'s. `default`: "
        "`cpaf`'s default, the custom VJP whose backward is the one-pass CPU kernel "
        "(`cpaf_jax.ops.cpu_kernel`) for the sigmoid and tanh bases and XLA's for the ReLU "
        "base (which fuses the cotangent's producer in a network: section 2b). "
        "`floor`: the `xla_vjp` custom VJP differentiated for `y` only, so XLA drops the "
        "parameter sums: the pointwise work alone. `/ k=2`: the default's time over its own "
        "k = 2 (median over rounds). `xla_vjp` (the same custom VJP with XLA's backward), "
        "`unrolled`, `naive`: the other implementations, `/ default` their time over the "
        "default's; `kernel`: the ReLU base through the kernel's ReLU form, here where the "
        "cotangent is given. Each program, ReLU's too, is compiled with plain `jax.jit` (XLA's "
        "defaults: YNN fusions on XLA:CPU) and with `cpaf_jax.jit` (YNN fusions off); ratios "
        "are to programs compiled the same way, and the goals below are `cpaf_jax.jit`'s.",
        "",
    ]
    rows = [
        [
            r.get("jit", "cpaf_jax.jit"),
            r["base"],
            r["sharing"] or "-",
            r["k"] or "-",
            r["variant"],
            _f(r["ms"], 3),
            _spread(r, "ratio"),
            _f(r["to_k2"]) if "to_k2" in r else "",
            _f(r["to_default"]) if "to_default" in r else "",
        ]
        for r in lt["rows"]
    ]
    out += [
        _table(
            ["jit", "base", "sharing", "k", "variant", "ms", "/ ReLU", "/ k=2", "/ default"], rows
        ),
        "",
    ]
    g = goals({"layer_table": lt})
    if g:
        out += [_table(["goal", "measured", "target"], g), ""]
    return out


def _user_network(un: dict) -> list[str]:
    out = [
        "### 2b. CPAF dropped into a user's network (no fused blocks)",
        "",
        "`4.2 network, plain JAX`: experiment 4.2's network written with "
        "`lax.conv_general_dilated`, a reshape max-pool and `jnp.dot`, only the activation "
        "from `cpaf_jax.cpaf` (per element, k = 2). `Flax MNIST CNN`: the CNN of Flax's MNIST "
        "tutorial in `flax.linen` with `cpaf_jax.activations.linen.CPAF` (per element) for "
        "`nn.relu`. `cpaf_<base>`: `cpaf`'s default; on CPU the sigmoid base's backward is "
        "the one-pass kernel (it needs the cotangent written out, here the pool's backward) "
        "and the ReLU base's is XLA's, into which XLA fuses that producer; "
        "`cpaf_sigmoid (xla_vjp)`: the sigmoid base with XLA's backward. Each step is "
        "compiled with plain `jax.jit` (XLA's defaults: YNN fusions on XLA:CPU) and with "
        "`cpaf_jax.jit` (YNN fusions off). Adam, jitted and "
        "donated; step time / the same network's ReLU step under the same `jit` (median "
        "[range] over interleaved rounds) and compiled memory / that ReLU step's. `ReLU / "
        "jax.jit`: the ReLU step under `cpaf_jax.jit` over the ReLU step under `jax.jit`.",
        "",
    ]
    rows = [
        [
            r["network"],
            r.get("jit", "cpaf_jax.jit"),
            r["activation"],
            r["batch"],
            _f(r["step_ms"]),
            _spread(r, "ratio"),
            f"{r['memory'] / 2**20:.2f}",
            _f(r["mem_ratio"]),
            _f(r["to_jax_jit"]) if "to_jax_jit" in r else "",
        ]
        for r in un["rows"]
    ]
    header = ["network", "jit", "activation", "batch", "step ms", "/ ReLU", "memory MiB"]
    out += [_table(header + ["memory / ReLU", "ReLU / jax.jit"], rows), ""]
    g = goals({"user_network": un})
    if g:
        out += [_table(["goal", "measured", "target"], g), ""]
    return out


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
        "load. Programs are compiled with `cpaf_jax.jit`, i.e. `cpaf_jax.compile_options` "
        f"({results.get('compiler_options') or 'XLA defaults'}), except in the rows whose "
        "`jit` column says `jax.jit` (XLA's defaults).",
        "",
    ]
    s = results["sections"]
    if "activation" in s:
        out += [
            "## 1. Activation alone (FashionNet shapes, float32)",
            "",
            "Forward, and forward+backward (gradients for the input and any parameters), "
            "ratio to ReLU at the same shape. CPAF default implementation unless named. APL, "
            "PAU and Swish in their default sharing and initial values: on CPU their backward "
            "is the one-pass kernel (`cpaf_jax.ops.kernel_vjp`); `(autodiff)` rows differentiate "
            "the same forward with JAX's autodiff.",
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
    if "layer_table" in s:
        out += _layer_table(s["layer_table"])
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
    if "user_network" in s:
        out += _user_network(s["user_network"])
    if "train_step" in s:
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
    if "epoch" in s:
        e = s["epoch"]
        out += [
            "## 4. Epoch through `fit` (the training engine) against the step alone",
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
            out += ["torch is not installed; section skipped (so is `torch.compile`).", ""]
        else:
            out += [
                f"torch {t['torch_version']}, `torch.set_num_threads({t['torch_threads']})`;"
                " NCHW; CPAF as a plain PyTorch module with per-element `a`, `b` "
                "`[*F, 2]`. `jax` rows: one JAX device using every core (what `fit` runs "
                "by default); `batch split` rows: the batch split over one CPU device per core "
                "(the engine's `data_parallel` strategy); `XLA defaults` rows: the `jax` step "
                "compiled without `cpaf_jax.compile_options`.",
                "",
                "`torch.compile`: "
                + (
                    "the compiled network is a peer (`torch.compile` rows)."
                    if t.get("compile") == "ok"
                    else f"not a peer here ({t.get('compile', 'not checked')})."
                ),
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
            f"Faster on this backend: **{ls['faster']}**. The training engine uses the Python "
            "loop; on GPU/TPU, where per-step dispatch is a larger share of a step, scan may win "
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
