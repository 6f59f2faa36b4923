"""Section 6: how to drive training steps on this backend.

* Dispatch overhead: a trivial jitted step (scalar + 1) called back to back.
* FashionNet (batch 128, Adam): N steps as a Python loop of one jitted, donated step against
  the same N steps as one ``lax.scan`` inside a single jit. Both carry the same
  ``TrainState`` and read batches by index from the device-resident data.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks.timing import interleaved
from benchmarks.train_step import StepRunner
from cpaf_jax import compile_options


def run(mode: str) -> dict:
    """Returns ``{"dispatch_us", "backend", "rows": [{activation, n_steps, loop_ms_per_step,
    scan_ms_per_step, scan_over_loop}], "faster"}``."""
    trivial = jax.jit(lambda x: x + 1)
    box = {"x": jnp.zeros((), jnp.float32)}

    def tick():
        box["x"] = trivial(box["x"])
        return box["x"]

    n_steps = {"smoke": 4, "quick": 20, "full": 50}[mode]
    repeats = {"smoke": 1, "quick": 3, "full": 5}[mode]
    dispatch = interleaved({"tick": tick}, repeats=repeats, iters=1000, warmup=10)["tick"]
    acts = ("relu",) if mode == "smoke" else ("relu", "cpaf_relu")
    rows = []
    for act in acts:
        loop_r = StepRunner("fashion_mnist", act, 128, (28, 28, 1), "adam")
        scan_r = StepRunner("fashion_mnist", act, 128, (28, 28, 1), "adam")
        idx = jnp.stack([scan_r.idxs[i % 8] for i in range(n_steps)])
        raw = scan_r.raw_step

        def many(state, images, labels, idx, raw=raw):
            def body(s, batch_idx, images=images, labels=labels):
                return raw(s, images, labels, batch_idx), None

            return jax.lax.scan(body, state, idx)[0]

        scan_fn = compile_options.jit(many, donate_argnums=(0,))
        sbox = {"s": scan_r.state}

        def scan_call(sbox=sbox, scan_fn=scan_fn, scan_r=scan_r, idx=idx):
            sbox["s"] = scan_fn(sbox["s"], scan_r.images, scan_r.labels, idx)
            return sbox["s"]

        def loop_call(loop_r=loop_r):
            out = None
            for _ in range(n_steps):
                out = loop_r()
            return out

        t = interleaved({"loop": loop_call, "scan": scan_call}, repeats=repeats, iters=1)
        rows.append(
            {
                "activation": act,
                "n_steps": n_steps,
                "loop_ms_per_step": t["loop"] / n_steps * 1e3,
                "scan_ms_per_step": t["scan"] / n_steps * 1e3,
                "scan_over_loop": t["scan"] / t["loop"],
            }
        )
    faster = "scan" if all(r["scan_over_loop"] < 1 for r in rows) else "python loop"
    return {
        "dispatch_us": dispatch * 1e6,
        "backend": jax.default_backend(),
        "rows": rows,
        "faster": faster,
    }
