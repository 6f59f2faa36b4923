"""``cpaf-train finetune``: a trained run's networks, their activations swapped for another
family (``cpaf_jax.swap_activations``), then trained further by the engine.

    cpaf-train finetune --from runs/fashion_mnist/relu --to cpaf_sigmoid --k 4 \\
        --sharing channel --train activations --epochs 2 --out runs/finetune

Each seed's network is the source run's member of that seed, restored from its last
checkpoint. The swap is fitted on the first ``--calibration`` training images; ``--train
activations`` then trains the activation parameters alone (every other parameter's update is
zeroed: ``optax.multi_transform`` with ``optax.set_to_zero``), ``--train all`` every parameter.
Members are the seeds x learning rates x ``--init`` values, as for training, so the engine's
sweeps, checkpoints and ``--resume`` apply. ``OUT/finetune.json`` records, per member, the
test accuracy and loss before the swap, right after it, and after fine-tuning, and each
layer's fit; ``OUT/<family>/`` holds the engine's checkpoints (``cpaf-train inspect`` and
``restore_model`` read them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

import optax
from flax import nnx

from cpaf_jax.activations.registry import family as family_record
from cpaf_jax.experiments import atomic
from cpaf_jax.experiments.restore import model_spec, restore_model
from cpaf_jax.experiments.resume_check import data_identity
from cpaf_jax.swap.swap import swap_activations
from cpaf_jax.training import Member, TrainConfig, evaluate, train
from cpaf_jax.training.checkpoints import Checkpointer
from cpaf_jax.training.members import member_tx
from cpaf_jax.training.meshes import sweep_mesh
from cpaf_jax.training.optim import ACTIVATION, WEIGHT, make_optimizer, param_labels

TRAIN_CHOICES = ("activations", "all")


@dataclasses.dataclass(frozen=True)
class FinetuneOptions:
    """Everything ``finetune`` needs (``None``: the source run's value or the default)."""

    source: str
    family: str
    out: str
    epochs: int = 1
    train: str = "activations"
    family_options: dict = dataclasses.field(default_factory=dict)
    sharing: Any = None
    gain: bool = False
    seeds: tuple[int, ...] | None = None
    learning_rates: tuple[float, ...] = (1e-3,)
    inits: tuple[tuple[str, Any], ...] = ()
    calibration: int = 512
    batch_size: int | None = None
    train_subset: int | None = None
    data_dir: str | None = None
    resume: bool = False
    progress: bool = True
    strategy: str = "auto"


def source_meta(run_dir: str) -> dict:
    """The last checkpoint's metadata of an engine run (``RUN_DIR`` or ``RUN_DIR/checkpoints``).

    Raises:
      FileNotFoundError: no checkpoint there.
    """
    path = os.path.join(run_dir, "checkpoints")
    path = path if os.path.isdir(path) else run_dir
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no checkpoint in {path}")
    ckpt = Checkpointer(path)
    try:
        epoch = ckpt.latest_epoch()
        if epoch is None:
            raise FileNotFoundError(f"no checkpoint in {path}")
        return ckpt.read_meta(epoch)
    finally:
        ckpt.close()


def member_index(meta: dict, seed: int, run_dir: str) -> int:
    """The index of the source run's first member of ``seed``.

    Raises:
      ValueError: no member of that seed (the seeds there are named).
    """
    seeds = [m.get("seed") for m in meta.get("members", [])]
    if seed not in seeds:
        raise ValueError(f"{run_dir} has no member of seed {seed}; its seeds are {seeds}")
    return seeds.index(seed)


def activations_only_tx(optimizer: str):
    """``member -> optimizer`` that updates activation parameters only (the member's
    ``activation_lr``, else its ``lr``); every other parameter's update is zero."""

    def tx_fn(member: Member):
        rate = member.lr if member.activation_lr is None else member.activation_lr
        return optax.multi_transform(
            {ACTIVATION: make_optimizer(optimizer, rate), WEIGHT: optax.set_to_zero()},
            param_labels,
        )

    return tx_fn


def _load_data(opts: FinetuneOptions, meta: dict):
    from cpaf_jax.experiments.fetch import ensure_dataset

    source = (meta.get("model") or {}).get("data") or {}
    name = source.get("dataset")
    if name is None:
        raise ValueError(f"the checkpoint in {opts.source} does not name its dataset")
    data = ensure_dataset(name, opts.data_dir)
    if source.get("validation"):
        data = data.split_validation(int(source["validation"]))
    return data.subset(opts.train_subset) if opts.train_subset else data


def _swapped(opts: FinetuneOptions, meta: dict, data, seeds) -> tuple[dict, dict]:
    """Per seed: the swapped model, and its record (accuracy before and after the swap)."""
    fam = family_record(opts.family)
    calibration = data.train_images[: opts.calibration]
    models, swaps = {}, {}
    for seed in seeds:
        original = restore_model(opts.source, member=member_index(meta, seed, opts.source))
        res = swap_activations(
            original,
            fam,
            calibration,
            sharing=opts.sharing,
            gain=opts.gain,
            **opts.family_options,
        )
        before = evaluate(original, data.test_images, data.test_labels)
        after = evaluate(res.model, data.test_images, data.test_labels)
        res.model.train()
        models[seed] = res.model
        swaps[seed] = {
            "before": {"test_loss": before[0], "test_accuracy": before[1]},
            "swapped": {"test_loss": after[0], "test_accuracy": after[1]},
            "layers": [dataclasses.asdict(f) for f in res.layers],
        }
    return models, swaps


def _members(opts: FinetuneOptions, seeds) -> list[Member]:
    values: dict[str, list] = {}
    for name, value in opts.inits:
        values.setdefault(name, []).append(value)
    grid = [{}]
    for name, vals in values.items():
        grid = [{**g, name: v} for g in grid for v in vals]
    return [
        Member(seed=s, lr=lr, inits=inits)
        for s in seeds
        for lr in opts.learning_rates
        for inits in grid
    ]


def _spec(opts: FinetuneOptions, meta: dict, model, sharing) -> dict:
    src = (meta.get("model") or {}).get("spec") or {}
    fam = family_record(opts.family)
    return model_spec(
        model,
        kind=src["kind"],
        activation=opts.family,
        seed=0,
        sharing=sharing if fam.parametric else None,
        model_kwargs=src.get("model_kwargs") or {},
        activation_kwargs=fam.select(opts.family_options),
    )


def finetune(opts: FinetuneOptions) -> dict:
    """Swaps and fine-tunes every member; writes ``OUT/finetune.json``; returns its content.

    Raises:
      ValueError: ``--train activations`` with a parameter-free family, a seed the source run
        lacks, a source checkpoint without its dataset or model spec.
    """
    fam = family_record(opts.family)
    if opts.train == "activations" and not fam.parametric:
        raise ValueError(
            f"{opts.family!r} has no parameters to train; pass --train all (or a parametric family)"
        )
    meta = source_meta(opts.source)
    seeds = opts.seeds or tuple(dict.fromkeys(m["seed"] for m in meta.get("members", [])))
    for seed in seeds:  # before any data is read
        member_index(meta, seed, opts.source)
    data = _load_data(opts, meta)
    models, swaps = _swapped(opts, meta, data, seeds)
    members = _members(opts, seeds)
    sharing = fam.default_sharing if opts.sharing is None else opts.sharing
    optimizer = (meta.get("config") or {}).get("optimizer", "adam")
    cfg = TrainConfig(
        epochs=opts.epochs,
        batch_size=opts.batch_size or (meta.get("config") or {}).get("batch_size", 128),
        optimizer=optimizer,
        out_dir=os.path.join(opts.out, opts.family),
        resume=opts.resume,
        progress=opts.progress,
        strategy=opts.strategy,
        name=f"{opts.family} ({opts.train})",
    )
    tx_fn = activations_only_tx(optimizer) if opts.train == "activations" else None
    describe = {
        "spec": _spec(opts, meta, models[seeds[0]], sharing),
        "finetune": {"from": os.path.abspath(opts.source), "train": opts.train},
        "data": data_identity(data, opts.train_subset, None),
    }
    res = train(
        members,
        lambda m: nnx.clone(models[m.seed]),  # a member's inits are written into its copy
        data,
        cfg,
        tx_fn=tx_fn or member_tx(optimizer),
        mesh=sweep_mesh(),
        describe=describe,
    )
    return _write_result(opts, members, swaps, res)


def _write_result(opts: FinetuneOptions, members, swaps: dict, res) -> dict:
    """``OUT/finetune.json`` from the swap records and the engine's result; returns it."""
    runs = []
    for i, m in enumerate(members):
        view = res.run(i)
        runs.append(
            {
                **m.describe(),
                **{k: v for k, v in swaps[m.seed].items() if k != "layers"},
                "finetuned": {"test_loss": view.test_loss, "test_accuracy": view.test_accuracy},
                "layers": swaps[m.seed]["layers"],
            }
        )
    out = {"options": _jsonable(dataclasses.asdict(opts)), "epochs": opts.epochs, "runs": runs}
    os.makedirs(opts.out, exist_ok=True)
    atomic.write_text(os.path.join(opts.out, "finetune.json"), json.dumps(out, indent=1))
    return out


def _jsonable(x):
    return json.loads(json.dumps(x, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))


def table(result: dict) -> str:
    """The per-member test accuracy before the swap, after it and after fine-tuning."""
    lines = [
        "| member | before swap | after swap | after fine-tuning |",
        "|---|---:|---:|---:|",
    ]
    for r in result["runs"]:
        acc = [r[k]["test_accuracy"] * 100 for k in ("before", "swapped", "finetuned")]
        lines.append(f"| {r['label']} | {acc[0]:.2f} | {acc[1]:.2f} | {acc[2]:.2f} |")
    return "\n".join(lines)


def report(result: dict) -> None:
    """Prints ``table(result)`` and where the files are."""
    print(table(result))
    print(f"\nresults: {result['options']['out']}/finetune.json", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``cpaf-train finetune``."""
    from cpaf_jax.experiments import cli

    p = argparse.ArgumentParser(
        prog="cpaf-train finetune",
        description="Swap a trained run's activations for another family (each layer fitted to "
        "the function it replaces, weighted by its inputs), then train further.",
    )
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        type=cli.existing_dir,
        metavar="RUN_DIR",
        help="a trained run's folder (OUT/ACTIVATION, holding checkpoints/)",
    )
    p.add_argument(
        "--to",
        dest="family",
        required=True,
        type=_family_name,
        metavar="FAMILY",
        help="the new activation family (cpaf_sigmoid, cpaf_relu, pau, apl...)",
    )
    p.add_argument(
        "--train",
        choices=TRAIN_CHOICES,
        default="activations",
        help="train the activation parameters only (default) or every parameter",
    )
    p.add_argument("--epochs", type=cli.positive_int, default=1, help="epochs >= 1 (default 1)")
    _add_swap_options(p, cli)
    _add_sweep_options(p, cli)
    return p


def _add_swap_options(p: argparse.ArgumentParser, cli) -> None:
    p.add_argument("--k", type=cli.positive_int, help="number of CPAF terms (CPAF families)")
    p.add_argument(
        "--sharing", type=cli.parse_sharing, help="the new layers' sharing (default: the family's)"
    )
    p.add_argument(
        "--gain",
        action="store_true",
        help="keep each layer's output variance on the calibration images",
    )
    p.add_argument(
        "--calibration",
        type=cli.positive_int,
        default=512,
        metavar="N",
        help="fit on the first N training images (default 512)",
    )


def _add_sweep_options(p: argparse.ArgumentParser, cli) -> None:
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=cli.non_negative_int, help="the source member's seed")
    seeds.add_argument(
        "--seeds",
        type=cli.parse_seeds,
        help="N: seeds 0..N-1; 3,7,9: those (default: every seed of the run)",
    )
    rates = p.add_mutually_exclusive_group()
    rates.add_argument("--lr", type=cli.positive_float, help="learning rate (default 1e-3)")
    rates.add_argument("--lrs", type=cli.positive_floats, help="learning rates to sweep")
    p.add_argument(
        "--init",
        type=cli.init_value,
        action="append",
        metavar="NAME=VALUES",
        help="sweep an initial value of a parameter instead of its fit; repeat",
    )
    p.add_argument("--batch-size", type=cli.positive_int, help="default: the source run's")
    p.add_argument(
        "--train-subset", type=cli.positive_int, metavar="N", help="use the first N training images"
    )
    p.add_argument("--data-dir", type=cli.existing_dir, help="folder holding the dataset")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument(
        "--sweep-strategy", default="auto", choices=("auto", "measure", "vmap", "chunked", "loop")
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _family_name(text: str) -> str:
    try:
        family_record(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def options_from(argv: list[str]) -> FinetuneOptions:
    """Parses and checks ``argv``; exits with status 2 and one message on bad input."""
    p = build_parser()
    args = p.parse_args(argv)
    fam = family_record(args.family)
    extra = {"k": args.k} if args.k is not None else {}
    if extra and "k" not in fam.option_names():
        p.error(f"argument --k: {args.family} takes no k")
    for name, _ in args.init or ():
        if name not in fam.params:
            p.error(f"argument --init: {args.family}'s parameters are {list(fam.params)}")
    if args.train == "activations" and not fam.parametric:
        p.error(f"argument --train: {args.family} has no parameters; pass --train all")
    seeds = (args.seed,) if args.seed is not None else args.seeds
    return FinetuneOptions(
        source=args.source,
        family=args.family,
        out=args.out,
        epochs=args.epochs,
        train=args.train,
        family_options=extra,
        sharing=args.sharing,
        gain=args.gain,
        seeds=seeds,
        learning_rates=args.lrs or (args.lr or 1e-3,),
        inits=tuple(args.init or ()),
        calibration=args.calibration,
        batch_size=args.batch_size,
        train_subset=args.train_subset,
        data_dir=args.data_dir,
        resume=args.resume,
        progress=not args.no_progress,
        strategy=args.sweep_strategy,
    )


def main(argv: list[str]) -> int:
    """``cpaf-train finetune``; returns the exit status (0 done, 2 bad input or data)."""
    from cpaf_jax.data import DataError

    try:
        opts = options_from(argv)
    except SystemExit as e:
        return 0 if e.code is None else e.code
    try:
        result = finetune(opts)
    except (ValueError, FileNotFoundError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report(result)
    return 0
