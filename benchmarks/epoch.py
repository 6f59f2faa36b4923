"""Section 4: a whole epoch of FashionNet through ``cpaf_jax.training.fit`` against its
steps alone.

``fit`` runs with ``progress=False, out_dir=None`` on the real Fashion-MNIST (a subset in the
quick modes) for four epochs (evaluation excluded from their times). Right after each epoch,
from fit's ``on_epoch_end``, the step alone (the same jitted step, placed as fit placed it, on
device-resident data) runs the same number of steps as one timed block. Each epoch is thus
paired with a block of the step alone seconds later, under the same load; the efficiency is
the median over the epochs after the first (which compiles) of block time / epoch time, so
it shows what the loop itself (batch selection, logging, host syncs) costs, with its range.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import jax

from benchmarks.train_step import StepRunner
from cpaf_jax.data import load_dataset
from cpaf_jax.models import build_model
from cpaf_jax.training import TrainConfig, fit
from cpaf_jax.training.optim import make_optimizer


def run(mode: str) -> dict:
    """Returns ``{"dataset", "train_images", "rows": [{activation, fit/step images_per_s,
    efficiency, efficiency_lo, efficiency_hi}]}``."""
    ds = load_dataset("fashion_mnist")
    n = {"smoke": 1024, "quick": 12800, "full": len(ds.train_labels)}[mode]
    ds = ds.subset(n) if n < len(ds.train_labels) else ds
    if mode != "full":
        # Evaluation is excluded from fit's images/s; a small test set only saves time.
        ds = dataclasses.replace(
            ds, test_images=ds.test_images[:1000], test_labels=ds.test_labels[:1000]
        )
    acts = ("relu",) if mode == "smoke" else ("relu", "cpaf_relu", "cpaf_sigmoid")
    batch = 128
    rows = []
    for act in acts:
        cfg = TrainConfig(
            epochs=4,
            batch_size=batch,
            progress=False,
            out_dir=None,
            log_every=50,
            eval_batch_size=1000,
        )
        # The step alone placed as fit places it (one device).
        runner = StepRunner(
            "fashion_mnist",
            act,
            batch,
            (28, 28, 1),
            "adam",
            n_data=len(ds.train_labels),
            mesh=None,
        )
        jax.block_until_ready(runner())  # compile
        steps = len(ds.train_labels) // batch
        blocks: list[float] = []

        def step_block(epoch, state, runner=runner, steps=steps, blocks=blocks):
            del epoch, state
            t1 = time.perf_counter()
            out = None
            for _ in range(steps):
                out = runner()
            jax.block_until_ready(out)
            blocks.append(time.perf_counter() - t1)

        t0 = time.perf_counter()
        res = fit(
            build_model("fashion_mnist", act, seed=0),
            ds,
            make_optimizer("adam", 1e-3),
            cfg,
            name=act,
            on_epoch_end=step_block,
        )
        wall = time.perf_counter() - t0
        pairs = [b / e for b, e in zip(blocks[1:], res.epoch_seconds[1:], strict=True)]
        rows.append(
            {
                "activation": act,
                "fit_images_per_s": res.images_per_second,
                "step_images_per_s": batch * steps * len(blocks[1:]) / sum(blocks[1:]),
                "efficiency": statistics.median(pairs),
                "efficiency_lo": min(pairs),
                "efficiency_hi": max(pairs),
                "epoch_seconds": res.epoch_seconds,
                "block_seconds": blocks,
                "fit_wall_seconds": wall,
                "test_accuracy": res.test_accuracy,
            }
        )
    return {"dataset": ds.source, "train_images": len(ds.train_labels), "rows": rows}
