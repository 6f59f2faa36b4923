"""``results.json``'s records, each built in one place: the settings, the environment, and
one record per trained member (a single run is a sweep of one member, with the same record).
"""

from __future__ import annotations

import json
import os
import platform

import jax

from cpaf_jax import compile_options
from cpaf_jax.activations.registry import family


def environment() -> dict:
    """Versions and device, for results.json."""
    import flax
    import optax

    dev = jax.devices()[0]
    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "device_count": jax.device_count(),  # of every process
        "process_count": jax.process_count(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        # What every program of the run was compiled with (None: XLA's defaults).
        "compiler_options": compile_options.compiler_options(),
    }


def settings_record(cfg, opts, settings, data) -> dict:
    """The experiment-wide settings every run applied (per-run values are in each run)."""
    return {
        "experiment": cfg.name,
        "section": cfg.section,
        "dataset": data.name,
        "data_source": data.source,
        "train_images": int(len(data.train_labels)),
        "test_images": int(len(data.test_labels)),
        # "validation": the test_* figures are on images held out of the training set.
        "eval_split": data.eval_split,
        "model": cfg.model,
        "model_kwargs": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.model_kwargs.items()
        },
        "optimizer": cfg.optimizer,
        "learning_rate": settings.learning_rate,
        "learning_rates": list(opts.learning_rates) or [settings.learning_rate],
        "batch_size": settings.batch_size,
        "epochs": settings.epochs,
        "eval_every": settings.eval_every,
        "activation_lr": opts.activation_lr,
        "weight_decay": opts.weight_decay,
        "trajectory_every": opts.trajectory_every,
        "strategy": settings.strategy,
        "seeds": list(opts.seeds),
        "command": opts.command,
    }


def _curve(history: list[dict], key: str) -> list[list[float]]:
    return [[r["step"], r[key]] for r in history if r.get("kind") == "eval"]


def _time_to(history: list[dict], threshold: float) -> float | None:
    for r in history:
        if r.get("kind") == "eval" and r["test_accuracy"] >= threshold:
            return r["train_seconds"]
    return None


def _final_train_loss(history: list[dict]) -> float | None:
    epochs = [r for r in history if r.get("kind") == "epoch"]
    return epochs[-1]["train_loss"] if epochs else None


def _pair_inits(act: str, m) -> dict:
    """``{"init_a": [...] | None, "init_b": ...}`` from the member's values of the family's
    (scale, location) pair (``ActivationFamily.pairs``); ``None`` where not given."""
    pairs = family(act).pairs
    if pairs is None:
        return {"init_a": None, "init_b": None}
    inits = m.describe()["inits"]
    return {"init_a": inits.get(pairs[0]), "init_b": inits.get(pairs[1])}


def run_record(cfg, act: str, res, i: int, tcfg, data, applied: dict) -> dict:
    """Member ``i`` of an engine result as one ``results.json`` run.

    Times (``wall_seconds``, ``train_seconds``, ``epoch_seconds``, ``images_per_second``,
    ``time_to_accuracy``) are the engine call's, shared by its ``engine.members`` members.
    """
    m, hist, failed = res.members[i], res.history[i], res.failed_step[i]
    steps = len(data.train_labels) // tcfg.batch_size
    return {
        "activation": act,
        "label": m.label,
        "seed": m.seed,
        "dataset": data.name,
        "eval_split": data.eval_split,
        "test_accuracy": None if failed is not None else float(res.test_accuracy[i]),
        "test_loss": None if failed is not None else float(res.test_loss[i]),
        "final_train_loss": _final_train_loss(hist),
        "epochs": tcfg.epochs,
        "batch_size": tcfg.batch_size,
        "optimizer": tcfg.optimizer,
        "learning_rate": m.lr,
        "activation_lr": m.activation_lr,
        "weight_decay": tcfg.weight_decay,
        "sharing": applied["sharing"],
        "activation_kwargs": applied["activation_kwargs"],
        "inits": m.describe()["inits"],
        # The (scale, location) pair's initial values, which the report's grid reads.
        **_pair_inits(act, m),
        "wall_seconds": res.wall_seconds,
        "train_seconds": res.train_seconds,
        "images_per_second": res.images_per_second,
        "epoch_seconds": list(res.epoch_seconds),
        "time_to_accuracy": _time_to(hist, cfg.time_to_accuracy),
        "time_to_accuracy_threshold": cfg.time_to_accuracy,
        "activation_params": applied["counts"],
        "failed_step": failed,
        "failed_epoch": None if failed is None else failed // steps,
        # Relative to the results folder (a run under --overwrite writes into a staging copy).
        "checkpoint": None
        if res.checkpoint is None
        else os.path.relpath(res.checkpoint, os.path.dirname(tcfg.out_dir)),
        "curve": _curve(hist, "test_loss"),
        "acc_curve": _curve(hist, "test_accuracy"),
        "run_dir": os.path.basename(tcfg.out_dir),
        "trajectory": [r for r in hist if r.get("kind") == "trajectory"],
        "engine": {
            "members": len(res.members),
            "timing": "the engine call's, shared by its members",
            "strategy": res.strategy,
            "chunk_size": res.chunk_size,
            "member_steps_per_second": res.member_steps_per_second,
        },
    }


def write_all_metrics(out: str, activations) -> None:
    """``<out>/metrics.jsonl``: every activation's ``metrics.jsonl``, one after another."""
    with open(os.path.join(out, "metrics.jsonl"), "w") as f:
        for act in activations:
            path = os.path.join(out, act, "metrics.jsonl")
            if not os.path.exists(path):
                continue
            with open(path) as src:
                for line in src:
                    f.write(json.dumps({"activation": act, **json.loads(line)}) + "\n")
