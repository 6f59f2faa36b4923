"""Runs one experiment: every (activation, seed), then ``results.json``, ``report.md``, plots."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from typing import Any

import jax

from cpaf_jax.loop import FitConfig, fit
from cpaf_jax.models import build_model
from cpaf_jax.param_groups import grouped_optimizer
from cpaf_jax.registry import count_activation_params
from cpaf_jax.restore import model_spec
from cpaf_jax.train_state import make_optimizer
from train import plots, report
from train.inspect_model import ab_pairs, feature_points, learned_curves


@dataclasses.dataclass
class RunOptions:
    """Command-line choices that apply to every run of an experiment."""

    activations: tuple[str, ...]
    seeds: tuple[int, ...]
    out: str
    data_dir: str | None = None
    dataset: str | None = None
    train_subset: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    eval_every: int | None = -1  # -1: the config's default
    sharing: Any = None
    activation_kwargs: dict | None = None
    activation_lr: float | None = None
    weight_decay: float = 0.0
    resume: bool = False
    progress: bool = True
    baseline: str | None = None
    plots: bool = True
    command: str = ""


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
        "device_count": jax.device_count(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def _curve(history: list[dict]) -> list[list[float]]:
    return [[r["step"], r["test_loss"]] for r in history if r.get("kind") == "eval"]


def _time_to(history: list[dict], threshold: float) -> float | None:
    for r in history:
        if r.get("kind") == "eval" and r["test_accuracy"] >= threshold:
            return r["train_seconds"]
    return None


def _write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def load_data(cfg, opts: RunOptions):
    """The experiment's dataset (``--dataset`` may swap it), subset if asked."""
    from train.fetch import ensure_dataset

    data = ensure_dataset(opts.dataset or cfg.dataset, opts.data_dir)
    if opts.train_subset:
        data = data.subset(opts.train_subset)
    return data


def run_experiment(cfg, opts: RunOptions) -> dict:
    """Trains every activation and seed of ``cfg`` with the overrides in ``opts``.

    Writes into ``opts.out``: ``results.json`` (after every run, so an interruption loses
    nothing finished), ``metrics.jsonl`` (all runs), ``report.md`` and PNG plots; each run's
    own directory ``<activation>/seed<k>/`` holds its ``metrics.jsonl`` and checkpoints.

    Returns:
      the results dictionary written to ``results.json``.
    """
    os.makedirs(opts.out, exist_ok=True)
    data = load_data(cfg, opts)
    epochs = opts.epochs or cfg.epochs
    batch = opts.batch_size or cfg.batch_size
    lr = opts.learning_rate or cfg.learning_rate
    eval_every = cfg.eval_every if opts.eval_every == -1 else opts.eval_every
    sharing = opts.sharing if opts.sharing is not None else cfg.sharing
    model_kwargs = dict(cfg.model_kwargs)
    model_kwargs["input_shape"] = data.train_images.shape[1:]
    model_kwargs["num_classes"] = data.num_classes
    settings = {
        "experiment": cfg.name,
        "section": cfg.section,
        "dataset": data.name,
        "data_source": data.source,
        "train_images": int(len(data.train_labels)),
        "test_images": int(len(data.test_labels)),
        "model": cfg.model,
        "model_kwargs": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in model_kwargs.items()
        },  # fmt: skip
        "optimizer": cfg.optimizer,
        "learning_rate": lr,
        "batch_size": batch,
        "epochs": epochs,
        "eval_every": eval_every,
        "sharing": sharing,
        "activation_kwargs": opts.activation_kwargs or {},
        "activation_lr": opts.activation_lr,
        "weight_decay": opts.weight_decay,
        "command": opts.command,
    }
    results = {"settings": settings, "environment": environment(), "runs": []}
    results_path = os.path.join(opts.out, "results.json")
    all_metrics = os.path.join(opts.out, "metrics.jsonl")
    open(all_metrics, "w").close()
    fitted = {}
    for act in opts.activations:
        for seed in opts.seeds:
            name = f"{act}/seed{seed}"
            kwargs = dict(model_kwargs)
            act_kwargs = opts.activation_kwargs if act.startswith("cpaf") else None
            if act_kwargs:
                kwargs["activation_kwargs"] = act_kwargs
            model = build_model(cfg.model, act, seed=seed, sharing=sharing, **kwargs)
            spec = model_spec(model, kind=cfg.model, activation=act, seed=seed, sharing=sharing,
                              model_kwargs=model_kwargs, activation_kwargs=act_kwargs)  # fmt: skip
            counts = count_activation_params(model)
            run_dir = os.path.join(opts.out, act, f"seed{seed}")
            fcfg = FitConfig(
                epochs=epochs,
                batch_size=batch,
                seed=seed,
                eval_every=eval_every,
                out_dir=run_dir,
                resume=opts.resume,
                progress=opts.progress,
            )
            t0 = time.perf_counter()
            if opts.activation_lr is not None or opts.weight_decay:
                tx = grouped_optimizer(cfg.optimizer, lr, activation_lr=opts.activation_lr,
                                       weight_decay=opts.weight_decay)  # fmt: skip
            else:
                tx = make_optimizer(cfg.optimizer, lr)
            res = fit(
                model,
                data,
                tx,
                fcfg,
                name=name,
                describe={"spec": spec, "activation_params": counts},
            )
            run = {
                "activation": act,
                "seed": seed,
                "dataset": data.name,
                "test_accuracy": res.test_accuracy,
                "test_loss": res.test_loss,
                "epochs": epochs,
                "batch_size": batch,
                "learning_rate": lr,
                "wall_seconds": time.perf_counter() - t0,
                "train_seconds": res.train_seconds,
                "images_per_second": res.images_per_second,
                "epoch_seconds": res.epoch_seconds,
                "time_to_accuracy": _time_to(res.history, cfg.time_to_accuracy),
                "time_to_accuracy_threshold": cfg.time_to_accuracy,
                "activation_params": counts,
                "failed_step": None,
                "curve": _curve(res.history),
                "run_dir": run_dir,
            }
            results["runs"].append(run)
            _write_json(results_path, results)
            with open(all_metrics, "a") as f:
                for rec in res.history:
                    f.write(json.dumps(rec) + "\n")
            fitted[(act, seed)] = res.model()
            print(
                f"{name}: test accuracy {res.test_accuracy * 100:.2f}%, loss "
                f"{res.test_loss:.4f}, {res.images_per_second:,.0f} img/s",
                file=sys.stderr,
            )
    results["summary"] = report.summary_by_activation(results["runs"])
    baseline = opts.baseline
    results["comparisons"] = report.comparisons(results["runs"], baseline)
    made = make_plots(cfg, results, fitted, data, opts.out) if opts.plots else []
    _write_json(results_path, results)
    with open(os.path.join(opts.out, "report.md"), "w") as f:
        f.write(report.render(cfg, results["runs"], baseline=baseline, command=opts.command,
                              plots=made))  # fmt: skip
    return results


def make_plots(cfg, results: dict, fitted: dict, data, out: str) -> list[str]:
    """Writes the experiment's PNGs into ``out``; returns their file names."""
    made = []
    runs = results["runs"]
    if any(r["curve"] for r in runs):
        made.append(plots.loss_curves(runs, os.path.join(out, "test_loss.png"),
                                      f"Test loss, {cfg.name} ({data.name})"))  # fmt: skip
    first_seed = {}
    for act, seed in fitted:
        first_seed.setdefault(act, seed)
    models = {act: fitted[(act, s)] for act, s in first_seed.items()}
    if cfg.model == "mnist_features":
        feats = {
            act: feature_points(m, data.test_images, data.test_labels) for act, m in models.items()
        }
        made.append(plots.feature_scatter(feats, os.path.join(out, "features_2d.png")))
    for act, m in models.items():
        pairs = ab_pairs(m)
        if pairs:
            made.append(plots.ab_scatter(pairs, os.path.join(out, f"ab_scatter_{act}.png"),
                                         f"Learned (a, b) of {act}"))  # fmt: skip
        curves = learned_curves(m)
        if curves:
            made.append(plots.activation_shapes(curves, os.path.join(out, f"shapes_{act}.png"),
                                                f"Learned {act} vs initial"))  # fmt: skip
    return [os.path.basename(p) for p in made]
