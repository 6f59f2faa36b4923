"""Section 4: a whole epoch of FashionNet through ``cpaf_jax.loop.fit`` against its steps alone.

``fit`` runs with ``progress=False, out_dir=None`` on the real Fashion-MNIST (a subset in the
quick modes) for three epochs; its ``images_per_second`` is the mean over the two epochs free
of compilation (evaluation excluded). The step alone is the same jitted step, placed as fit
placed it, run back to back on device-resident data for the same number of steps (two epochs'
worth, timed as one block, right after fit): sustained speed against sustained speed, so the
ratio shows what the loop itself (batch selection, logging, host syncs) costs.
Efficiency = fit's images/s / the step's images/s.
"""

from __future__ import annotations

import dataclasses
import time

import jax

from benchmarks.train_step import StepRunner
from cpaf_jax.data import load_dataset
from cpaf_jax.loop import FitConfig, data_parallel_mesh, fit
from cpaf_jax.models import build_model
from cpaf_jax.train_state import make_optimizer


def run(mode: str) -> dict:
    """Returns ``{"dataset", "train_images", "rows": [{activation, fit/step images_per_s,
    efficiency}]}``."""
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
        cfg = FitConfig(
            epochs=3,
            batch_size=batch,
            progress=False,
            out_dir=None,
            log_every=50,
            eval_batch_size=1000,
        )
        t0 = time.perf_counter()
        res = fit(
            build_model("fashion_mnist", act, seed=0),
            ds,
            make_optimizer("adam", 1e-3),
            cfg,
            name=act,
        )
        wall = time.perf_counter() - t0
        # The step alone placed as fit placed it (one device unless data_parallel is set).
        runner = StepRunner(
            "fashion_mnist",
            act,
            batch,
            (28, 28, 1),
            "adam",
            n_data=len(ds.train_labels),
            mesh=data_parallel_mesh(cfg),
        )
        n_steps = 2 * (len(ds.train_labels) // batch)
        jax.block_until_ready(runner())  # compile
        t1 = time.perf_counter()
        out = None
        for _ in range(n_steps):
            out = runner()
        jax.block_until_ready(out)
        step_ips = batch * n_steps / (time.perf_counter() - t1)
        rows.append(
            {
                "activation": act,
                "fit_images_per_s": res.images_per_second,
                "step_images_per_s": step_ips,
                "efficiency": res.images_per_second / step_ips,
                "epoch_seconds": res.epoch_seconds,
                "fit_wall_seconds": wall,
                "test_accuracy": res.test_accuracy,
            }
        )
    return {"dataset": ds.source, "train_images": len(ds.train_labels), "rows": rows}
