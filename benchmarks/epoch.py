"""Section 4: a whole epoch of FashionNet through ``cpaf_jax.loop.fit`` against its steps alone.

``fit`` runs with ``progress=False, out_dir=None`` on the real Fashion-MNIST (a subset in the
quick modes), two epochs so the second is free of compilation; its ``images_per_second`` is
that steady epoch (evaluation excluded). The step alone is the same jitted step timed back to
back on the same device-resident data. Efficiency = fit's images/s / the step's images/s.
"""

from __future__ import annotations

import dataclasses
import time

from benchmarks.timing import interleaved
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
            epochs=2,
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
        # The step alone placed as fit placed it (data parallel over several CPU devices).
        runner = StepRunner(
            "fashion_mnist",
            act,
            batch,
            (28, 28, 1),
            "adam",
            n_data=len(ds.train_labels),
            mesh=data_parallel_mesh(cfg),
        )
        reps = 1 if mode == "smoke" else 5
        t = interleaved({act: runner}, repeats=reps, iters=5 if mode == "smoke" else 20)[act]
        step_ips = batch / t
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
