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
import numpy as np

from cpaf_jax import compile_options
from cpaf_jax.activations.registry import count_activation_params
from cpaf_jax.experiments import plots, report
from cpaf_jax.experiments.inspect_model import ab_pairs, feature_points, learned_curves
from cpaf_jax.models import build_model
from cpaf_jax.training.loop import FitConfig, fit
from cpaf_jax.training.meshes import sweep_mesh
from cpaf_jax.training.optim import grouped_optimizer
from cpaf_jax.training.restore import model_spec
from cpaf_jax.training.state import make_optimizer


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
    trajectory_every: int | None = None
    resume: bool = False
    progress: bool = True
    sweep: bool = True
    sweep_strategy: str = "auto"
    learning_rates: tuple[float, ...] = ()
    init_a: tuple[float, ...] = ()
    init_b: tuple[float, ...] = ()
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
        # What every program of the run was compiled with (None: XLA's defaults).
        "compiler_options": compile_options.compiler_options(),
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
    from cpaf_jax.experiments.fetch import ensure_dataset

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
        },
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
    if not opts.resume:
        open(all_metrics, "w").close()
    fitted = {}
    use_sweep = opts.sweep and (
        len(opts.seeds) > 1 or len(opts.learning_rates) > 1 or opts.init_a or opts.init_b
    )
    previous = []
    if opts.resume and os.path.exists(results_path):
        with open(results_path) as f:
            previous = json.load(f).get("runs", [])
    for act in opts.activations:
        done = [r for r in previous if r["activation"] == act and "sweep" in r]
        if use_sweep and done:
            # A finished activation's sweep is kept on --resume; sweeps have no mid-run
            # checkpoints, so an interrupted one starts over.
            results["runs"].extend(done)
            _write_json(results_path, results)
            continue
        if use_sweep:
            runs, models = _sweep_activation(
                cfg, opts, act, data, model_kwargs, sharing, epochs, batch, lr, eval_every
            )
            for run in runs:
                results["runs"].append(run)
            fitted.update(models)
            _write_json(results_path, results)
            continue
        for seed in opts.seeds:
            name = f"{act}/seed{seed}"
            kwargs = dict(model_kwargs)
            act_kwargs = opts.activation_kwargs if act.startswith("cpaf") else None
            if act_kwargs:
                kwargs["activation_kwargs"] = act_kwargs
            model = build_model(cfg.model, act, seed=seed, sharing=sharing, **kwargs)
            spec = model_spec(
                model,
                kind=cfg.model,
                activation=act,
                seed=seed,
                sharing=sharing,
                model_kwargs=model_kwargs,
                activation_kwargs=act_kwargs,
            )
            counts = count_activation_params(model)
            run_dir = os.path.join(opts.out, act, f"seed{seed}")
            fcfg = FitConfig(
                epochs=epochs,
                batch_size=batch,
                seed=seed,
                eval_every=eval_every,
                trajectory_every=opts.trajectory_every,
                out_dir=run_dir,
                resume=opts.resume,
                progress=opts.progress,
            )
            t0 = time.perf_counter()
            if opts.activation_lr is not None or opts.weight_decay:
                tx = grouped_optimizer(
                    cfg.optimizer,
                    lr,
                    activation_lr=opts.activation_lr,
                    weight_decay=opts.weight_decay,
                )
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
                "trajectory": [r for r in res.history if r.get("kind") == "trajectory"],
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
    # Without matplotlib (a plain install) plots.available() says so in one line.
    made = (
        make_plots(cfg, results, fitted, data, opts.out) if opts.plots and plots.available() else []
    )
    _write_json(results_path, results)
    with open(os.path.join(opts.out, "report.md"), "w") as f:
        f.write(
            report.render(cfg, results["runs"], baseline=baseline, command=opts.command, plots=made)
        )
    return results


def sweep_members(opts: RunOptions, act: str, lr: float, k: int):
    """The members of one activation's sweep: seeds x learning rates x (a, b) grid.

    The (a, b) grid follows Table 1's pattern for k terms: ``a_i = a`` and
    ``b_i = linspace(b, -b, k)``; it applies to CPAF activations only.
    """
    from cpaf_jax.training.sweep import SweepMember

    lrs = opts.learning_rates or (lr,)
    grid = [(None, None)]
    if act.startswith("cpaf") and (opts.init_a or opts.init_b):
        from cpaf_jax.activations.initializers import default_terms
        from cpaf_jax.ops.bases import resolve_base

        a0, b0 = default_terms(resolve_base(act.split("_", 1)[1]), k)
        a_vals = opts.init_a or (float(a0[0]),)
        b_vals = opts.init_b or (float(b0[0]) if k > 1 else 0.0,)
        grid = [
            (tuple([a] * k), tuple(np.linspace(b, -b, k).tolist()) if k > 1 else (b,))
            for a in a_vals
            for b in b_vals
        ]
    return [
        SweepMember(seed=seed, lr=rate, a_init=a, b_init=b)
        for seed in opts.seeds
        for rate in lrs
        for a, b in grid
    ]


def _sweep_activation(cfg, opts, act, data, model_kwargs, sharing, epochs, batch, lr, eval_every):
    """Trains all members of one activation as a sweep; returns run entries and models."""
    from cpaf_jax.training.sweep import run_sweep

    act_kwargs = dict(opts.activation_kwargs or {}) if act.startswith("cpaf") else {}
    k = int(act_kwargs.get("k", 2))
    members = sweep_members(opts, act, lr, k)
    mk = dict(model_kwargs, sharing=sharing if sharing is not None else None)
    if mk["sharing"] is None:
        mk.pop("sharing")
    if act_kwargs:
        mk["activation_kwargs"] = act_kwargs
    t0 = time.perf_counter()
    res = run_sweep(
        cfg.model,
        act,
        members,
        data,
        epochs=epochs,
        batch_size=batch,
        optimizer=cfg.optimizer,
        model_kwargs=mk,
        strategy=opts.sweep_strategy,
        mesh=sweep_mesh(),
        eval_every=eval_every,
        progress=opts.progress,
    )
    wall = time.perf_counter() - t0
    m = len(members)
    runs, models = [], {}
    for i, mem in enumerate(members):
        hist = res.history[i]
        epoch_secs = [r["epoch_seconds"] / m for r in hist if r.get("kind") == "epoch"]
        tta, elapsed = None, 0.0
        for r in hist:
            if r.get("kind") == "epoch":
                elapsed += r["epoch_seconds"] / m
                if tta is None and r["test_accuracy"] >= cfg.time_to_accuracy:
                    tta = elapsed
        model = res.model(i)
        run = {
            "activation": act,
            "seed": mem.seed,
            "label": mem.label,
            "dataset": data.name,
            "test_accuracy": None
            if res.failed_step[i] is not None
            else float(res.test_accuracy[i]),
            "test_loss": None if res.failed_step[i] is not None else float(res.test_loss[i]),
            "epochs": epochs,
            "batch_size": batch,
            "learning_rate": mem.lr,
            "init_a": None if mem.a_init is None else list(mem.a_init),
            "init_b": None if mem.b_init is None else list(mem.b_init),
            "wall_seconds": wall / m,
            "train_seconds": res.train_seconds / m,
            "images_per_second": len(data.train_labels)
            * len(epoch_secs)
            / max(sum(epoch_secs), 1e-9),
            "epoch_seconds": epoch_secs,
            "time_to_accuracy": tta,
            "time_to_accuracy_threshold": cfg.time_to_accuracy,
            "activation_params": count_activation_params(model),
            "failed_step": res.failed_step[i],
            "curve": _curve(hist),
            "sweep": {
                "members": m,
                # wall/train/epoch seconds, images/s and time to accuracy above are this
                # member's share of the sweep (the sweep's time / members), not its own clock.
                "timing": "share of the sweep: sweep time / members",
                "strategy": res.strategy,
                "chunk_size": res.chunk_size,
                "member_steps_per_second": res.member_steps_per_second,
            },
        }
        runs.append(run)
        models[(act, mem.label)] = model
        with open(os.path.join(opts.out, "metrics.jsonl"), "a") as f:
            for rec in hist:
                f.write(json.dumps({"name": f"{act}/{mem.label}", **rec}) + "\n")
    print(f"{act}: sweep of {m} members ({res.strategy}) in {wall:.1f} s", file=sys.stderr)
    return runs, models


def make_plots(cfg, results: dict, fitted: dict, data, out: str) -> list[str]:
    """Writes the experiment's PNGs into ``out``; returns their file names."""
    made = []
    runs = results["runs"]
    if any(r["curve"] for r in runs):
        made.append(
            plots.loss_curves(
                runs, os.path.join(out, "test_loss.png"), f"Test loss, {cfg.name} ({data.name})"
            )
        )
    first = {}
    for act, key in fitted:
        first.setdefault(act, key)
    models = {act: fitted[(act, key)] for act, key in first.items()}
    # Sweeps kept by --resume bring no models back, so there may be none to plot.
    if cfg.model == "mnist_features" and models:
        feats = {
            act: feature_points(m, data.test_images, data.test_labels) for act, m in models.items()
        }
        made.append(plots.feature_scatter(feats, os.path.join(out, "features_2d.png")))
    for act, m in models.items():
        pairs = ab_pairs(m)
        if pairs:
            made.append(
                plots.ab_scatter(
                    pairs, os.path.join(out, f"ab_scatter_{act}.png"), f"Learned (a, b) of {act}"
                )
            )
        curves = learned_curves(m)
        if curves:
            made.append(
                plots.activation_shapes(
                    curves, os.path.join(out, f"shapes_{act}.png"), f"Learned {act} vs initial"
                )
            )
    for act in dict.fromkeys(r["activation"] for r in runs):
        traj = next(
            (r["trajectory"] for r in runs if r["activation"] == act and r.get("trajectory")), None
        )
        if traj:
            path = os.path.join(out, f"trajectory_{act}.png")
            made.append(plots.trajectories(traj, path, f"{act}: activation parameters in training"))
    grid = [r for r in runs if r.get("init_a") is not None and r.get("test_accuracy") is not None]
    for act in dict.fromkeys(r["activation"] for r in grid):
        cells: dict[tuple[float, float], list[float]] = {}
        for r in grid:
            if r["activation"] == act:
                cells.setdefault((r["init_a"][0], r["init_b"][0]), []).append(r["test_accuracy"])
        points = [(a, b, sum(v) / len(v)) for (a, b), v in cells.items()]
        path = os.path.join(out, f"ab_grid_{act}.png")
        made.append(plots.accuracy_grid(points, path, f"{act}: test accuracy over initial (a, b1)"))
    return [os.path.basename(p) for p in made]
