"""Runs one experiment: every activation through the training engine, then ``results.json``,
``report.md`` and plots.

Each activation is one engine call (``cpaf_jax.training.train``) whose members are the
command's seeds x learning rates x (a, b) initial values; one seed is a sweep of one member.
Each activation's folder ``<out>/<activation>/`` holds its ``metrics.jsonl`` and the stacked
checkpoints that ``--resume`` continues from.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from typing import Any

import numpy as np

from cpaf_jax.activations.registry import count_activation_params, family, is_parametric
from cpaf_jax.experiments import atomic, plots, records, report
from cpaf_jax.experiments.figures import make_plots
from cpaf_jax.experiments.restore import model_spec
from cpaf_jax.experiments.resume_check import check_resume, data_identity
from cpaf_jax.experiments.tracking import make_tracker
from cpaf_jax.models import build_model
from cpaf_jax.provenance import provenance
from cpaf_jax.training import Member, TrainConfig, TrainingDiverged, train
from cpaf_jax.training.hosts import is_writer
from cpaf_jax.training.meshes import sweep_mesh


@dataclasses.dataclass
class RunOptions:
    """Command-line choices that apply to every run of an experiment (``None``: not given)."""

    activations: tuple[str, ...]
    seeds: tuple[int, ...]
    out: str
    data_dir: str | None = None
    dataset: str | None = None
    train_subset: int | None = None
    validation: int | None = None  # hold out this many training images; score on them
    width: float | None = None  # FashionNet width multiplier (a wider matched baseline)
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    eval_every: int | None = -1  # -1: the config's default; None: per epoch only
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
    init_a: tuple[float, ...] = ()  # the family's (scale, location) pair, Table 1's pattern
    init_b: tuple[float, ...] = ()
    inits: tuple[tuple[str, Any], ...] = ()  # (parameter name, one initial value), swept
    baseline: str | None = None
    plots: bool = True
    track: str = "none"
    command: str = ""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The settings every run of the experiment applies: the config with the overrides."""

    epochs: int
    batch_size: int
    learning_rate: float
    eval_every: int | None
    sharing: Any
    model_kwargs: dict
    strategy: str


def resolve_settings(cfg, opts: RunOptions, data) -> Settings:
    """The config's values where an option was not given (``None``), the option's otherwise."""

    def pick(option, default):
        return default if option is None else option

    model_kwargs = dict(cfg.model_kwargs)
    model_kwargs["input_shape"] = tuple(data.train_images.shape[1:])
    model_kwargs["num_classes"] = data.num_classes
    if opts.width is not None:
        model_kwargs["width"] = opts.width
    return Settings(
        epochs=pick(opts.epochs, cfg.epochs),
        batch_size=pick(opts.batch_size, cfg.batch_size),
        learning_rate=pick(opts.learning_rate, cfg.learning_rate),
        eval_every=cfg.eval_every if opts.eval_every == -1 else opts.eval_every,
        sharing=pick(opts.sharing, cfg.sharing),
        model_kwargs=model_kwargs,
        # --no-sweep: members one after another, each the plain single-run program.
        strategy=opts.sweep_strategy if opts.sweep else "loop",
    )


def load_data(cfg, opts: RunOptions):
    """The experiment's dataset (``--dataset`` may swap it), validation split and subset if
    asked (the split is carved from the whole training set first, so it does not depend on
    ``--train-subset``)."""
    from cpaf_jax.experiments.fetch import ensure_dataset

    data = ensure_dataset(opts.dataset or cfg.dataset, opts.data_dir)
    if opts.validation is not None:
        data = data.split_validation(opts.validation)
    if opts.train_subset is not None:
        data = data.subset(opts.train_subset)
    return data


def activation_kwargs_for(act: str, opts: RunOptions) -> dict:
    """The ``--k`` style arguments that apply to ``act`` (CPAF's number of terms)."""
    return family(act).select(opts.activation_kwargs or {})


def _pair_grid(opts: RunOptions, act: str) -> list[dict]:
    """``--init-a`` / ``--init-b``: the family's (scale, location) pair in Table 1's pattern
    for k terms, ``scale_i = A`` and ``location = linspace(B, -B, k)``; ``[{}]`` when not given
    or when the family has no such pair."""
    fam = family(act)
    if fam.pairs is None or not (opts.init_a or opts.init_b):
        return [{}]
    scale, loc = fam.pairs
    k = int(activation_kwargs_for(act, opts).get("k", 2))
    a0, b0 = (fam.initial_values(k=k)[n] for n in fam.pairs)
    a_vals = opts.init_a or (float(a0[0]),)
    b_vals = opts.init_b or (float(b0[0]) if k > 1 else 0.0,)
    return [
        {scale: tuple([a] * k), loc: tuple(np.linspace(b, -b, k).tolist()) if k > 1 else (b,)}
        for a in a_vals
        for b in b_vals
    ]


def init_grid(opts: RunOptions, act: str) -> list[dict]:
    """One activation's grid of initial values: the pair grid times every ``--init NAME=...``
    whose NAME is a parameter of the activation's family (each repetition of a name is one
    more value of it to sweep)."""
    params = family(act).params
    grid = _pair_grid(opts, act)
    values: dict[str, list] = {}
    for name, value in opts.inits:
        if name in params:
            values.setdefault(name, []).append(value)
    for name, vals in values.items():
        grid = [{**g, name: v} for g in grid for v in vals]
    return grid


def sweep_members(opts: RunOptions, act: str, settings: Settings) -> list[Member]:
    """One activation's members: seeds x learning rates x the grid of initial values."""
    lrs = opts.learning_rates or (settings.learning_rate,)
    return [
        Member(seed=seed, lr=rate, activation_lr=opts.activation_lr, inits=inits)
        for seed in opts.seeds
        for rate in lrs
        for inits in init_grid(opts, act)
    ]


def _model_fn(cfg, act: str, settings: Settings, opts: RunOptions):
    kwargs = dict(settings.model_kwargs)
    act_kwargs = activation_kwargs_for(act, opts)
    sharing = settings.sharing if is_parametric(act) else None
    extra = {"activation_kwargs": act_kwargs} if act_kwargs else {}
    if sharing is not None:
        extra["sharing"] = sharing

    def build(member: Member):
        # The engine writes the member's initial values into the built network.
        return build_model(cfg.model, act, seed=member.seed, **kwargs, **extra)

    return build, sharing, act_kwargs


_TRACKED = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def _tracking(tracker, act: str):
    """The engine's ``on_records`` hook: each member's scalars to ``tracker`` as they come."""

    def on_records(records: list[dict]) -> None:
        for r in records:
            scalars = {k: r[k] for k in _TRACKED if k in r}
            if scalars and r["kind"] != "epoch":
                tracker.log(f"{act}/{r['name']}", r["step"], scalars)

    return on_records


def _train_activation(
    cfg, opts: RunOptions, settings: Settings, act: str, data, tracker, identity: dict
):
    """One activation's engine call; returns ``(run records, first member's model)``.

    ``identity`` (``resume_check.data_identity``) goes into every checkpoint: a resume on
    other data is refused."""
    members = sweep_members(opts, act, settings)
    build, sharing, act_kwargs = _model_fn(cfg, act, settings, opts)
    model0 = build(members[0])
    spec = model_spec(
        model0,
        kind=cfg.model,
        activation=act,
        seed=members[0].seed,
        sharing=sharing,
        model_kwargs=settings.model_kwargs,
        activation_kwargs=act_kwargs,
    )
    counts = count_activation_params(model0)
    tcfg = TrainConfig(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        optimizer=cfg.optimizer,
        weight_decay=opts.weight_decay,
        eval_every=settings.eval_every,
        trajectory_every=opts.trajectory_every,
        out_dir=os.path.join(opts.out, act),
        resume=opts.resume,
        progress=opts.progress,
        strategy=settings.strategy,
        name=act,
    )
    res = train(
        members,
        build,
        data,
        tcfg,
        mesh=sweep_mesh(),
        describe={"spec": spec, "activation_params": counts, "data": identity},
        on_records=_tracking(tracker, act),
    )
    applied = {"sharing": sharing, "activation_kwargs": act_kwargs, "counts": counts}
    runs = [records.run_record(cfg, act, res, i, tcfg, data, applied) for i in range(len(members))]
    print(
        f"{act}: {len(members)} member(s) ({res.strategy}) in {res.wall_seconds:.1f} s",
        file=sys.stderr,
    )
    return runs, res.model(0)


def _warn_failures(runs: list[dict], num_classes: int) -> None:
    chance = math.log(num_classes)
    for r in runs:
        if r["failed_step"] is not None:
            print(
                f"warning: {r['activation']} {r['label']}: loss became NaN/Inf at step "
                f"{r['failed_step']}; lower --lr and rerun with --resume",
                file=sys.stderr,
            )
        elif r["final_train_loss"] is not None and r["final_train_loss"] > 1.5 * chance:
            print(
                f"warning: {r['activation']} {r['label']}: final training loss "
                f"{r['final_train_loss']:.3g} is far above chance level ({chance:.2f}); the "
                "learning rate may be too high",
                file=sys.stderr,
            )


def _write_json(path: str, obj) -> None:
    atomic.write_text(path, json.dumps(obj, indent=1))


def _write_outputs(cfg, opts: RunOptions, results: dict, models: dict, data) -> None:
    results["summary"] = report.summary_by_activation(results["runs"])
    results["comparisons"] = report.comparisons(results["runs"], opts.baseline)
    made = (
        make_plots(cfg, results, models, data, opts.out) if opts.plots and plots.available() else []
    )
    _write_json(os.path.join(opts.out, "results.json"), results)
    text = report.render(
        cfg, results["runs"], baseline=opts.baseline, command=opts.command, plots=made
    )
    atomic.write_text(os.path.join(opts.out, "report.md"), text)


def run_experiment(cfg, opts: RunOptions) -> dict:
    """Trains every activation of ``cfg`` with the overrides in ``opts``.

    Writes into ``opts.out``: ``results.json`` (after every activation, so an interruption
    loses nothing finished), ``metrics.jsonl`` (every run's records), ``report.md`` and PNG
    plots.

    Returns:
      the results dictionary written to ``results.json``.

    Raises:
      TrainingDiverged: after writing everything, when a member's loss became NaN or Inf.
    """
    os.makedirs(opts.out, exist_ok=True)
    data = load_data(cfg, opts)
    settings = resolve_settings(cfg, opts, data)
    identity = data_identity(data, opts.train_subset, opts.validation)
    if opts.resume:
        check_resume(opts.out, identity, opts.activations)
    results = {
        "settings": {
            **records.settings_record(cfg, opts, settings, data),
            **identity,
            "activations": list(opts.activations),
        },
        "environment": records.environment(),
        "provenance": provenance(),
        "runs": [],
    }
    models = {}
    # Several processes: process 0 alone tracks and writes the run's files.
    tracker = make_tracker(
        opts.track if is_writer() else "none", out=opts.out, config=dataclasses.asdict(opts)
    )
    try:
        for act in opts.activations:
            runs, models[act] = _train_activation(cfg, opts, settings, act, data, tracker, identity)
            results["runs"].extend(runs)
            if is_writer():
                _write_json(os.path.join(opts.out, "results.json"), results)
    finally:
        tracker.close()
    if is_writer():
        records.write_all_metrics(opts.out, opts.activations)
        _write_outputs(cfg, opts, results, models, data)
    _warn_failures(results["runs"], data.num_classes)
    failed = [r for r in results["runs"] if r["failed_step"] is not None]
    if failed:
        r = failed[0]
        raise TrainingDiverged(
            r["failed_step"], r["failed_epoch"], r["checkpoint"], f"{r['activation']} {r['label']}"
        )
    return results
