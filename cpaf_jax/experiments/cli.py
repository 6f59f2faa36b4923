"""``python -m train EXPERIMENT [options]``: run one of the paper's experiments."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import shlex
import sys

from cpaf_jax.experiments import distributed
from cpaf_jax.experiments.configs import EXPERIMENTS, get_config

_EPILOG = """experiments:
  mnist_features   4.1: conv 16-8-4-2 to a 2-D feature, MNIST (Fig. 9-11)
  fashion_mnist    4.2: conv 16-32-4 + dense 30, Fashion-MNIST (Table 2, Fig. 12-14)
  cifar10          4.3: CIFAR-10, --structure 1|2|3 (Tables 3-4, 6, Fig. 15)
  cifar100         4.3: CIFAR-100, --structure 1|2|3 (Tables 3, 5, 6)

  reproduce         the whole reproduction, one stage at a time
                    (--stage tune|final|ablation|features), then REPRODUCTION.md from
                    runs.csv (cpaf-train reproduce -h)
  inspect RUN_DIR   summarise a trained model's activations (cpaf-train inspect -h)
  finetune          swap a trained run's activations for another family, then train on
                    (cpaf-train finetune --from RUN_DIR --to FAMILY; -h for more)
  build-kernel      build the one-pass CPU kernel before training (cpaf-train build-kernel -h)

examples:
  cpaf-train fashion_mnist                       # the paper's four activations
  cpaf-train fashion_mnist --seeds 5 --baseline prelu
  cpaf-train mnist_features --dataset fashion_mnist --epochs 2
  cpaf-train cifar10 --structure 2 --data-dir ~/data

From a source checkout, python -m train is the same command.
"""


# Every option is checked when parsed: argparse prints ``argument --OPT: <message>`` and exits
# with status 2, before any data is loaded or the output folder is touched. "Not given" is
# always ``None`` (never a falsy value that could also be a user's choice).


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def int_at_least(low: int):
    """An argparse type: an integer >= ``low``."""

    def parse(text: str) -> int:
        n = _integer(text)
        if n < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {n}")
        return n

    parse.__name__ = f"integer >= {low}"
    return parse


non_negative_int = int_at_least(0)
positive_int = int_at_least(1)


def _number(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return x


def positive_float(text: str) -> float:
    """``"1e-3"`` -> 0.001; argparse error unless a finite number > 0."""
    x = _number(text)
    if x <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {x:g}")
    return x


def non_negative_float(text: str) -> float:
    """``"5e-4"`` -> 0.0005; argparse error unless a finite number >= 0."""
    x = _number(text)
    if x < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {x:g}")
    return x


def _distinct(values: tuple, what: str) -> tuple:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in repeated)
        raise argparse.ArgumentTypeError(f"{what} must be distinct; {shown} given twice")
    return values


def _items(text: str, what: str) -> list[str]:
    items = [x.strip() for x in text.split(",")]
    if not text.strip() or any(not x for x in items):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated {what} with none empty, got {text!r}"
        )
    return items


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"5"`` -> seeds 0..4; ``"3,7,9"`` -> those seeds (distinct, each >= 0)."""
    usage = "a count N >= 1 (seeds 0..N-1) or distinct seeds >= 0 like 3,7,9"
    try:
        if "," not in text:
            n = int(text)
            if n < 1:
                raise argparse.ArgumentTypeError(f"expected {usage}; got {text!r}")
            return tuple(range(n))
        seeds = tuple(int(s) for s in _items(text, "seeds"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {usage}; got {text!r}") from None
    if any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"expected {usage}; got {text!r}")
    return _distinct(seeds, "seeds")


def parse_sharing(text: str):
    """``"element"``/``"channel"``/``"shared"`` as is; ``"0,1"`` -> the axes ``(0, 1)``."""
    if text in ("element", "channel", "shared"):
        return text
    usage = "element, channel, shared or distinct feature axes in -3..2 like 0,1"
    try:
        axes = tuple(int(a) for a in _items(text, "axes"))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected {usage}; got {text!r}") from None
    if any(not -3 <= a <= 2 for a in axes):
        raise argparse.ArgumentTypeError(f"expected {usage}; got {text!r}")
    return _distinct(axes, "axes")


def floats(text: str) -> tuple[float, ...]:
    """``"1e-3,3e-3"`` -> ``(0.001, 0.003)``: distinct finite numbers, none empty."""
    return _distinct(tuple(_number(x) for x in _items(text, "numbers")), "values")


def positive_floats(text: str) -> tuple[float, ...]:
    """Like :func:`floats`, each > 0 (learning rates)."""
    return _distinct(tuple(positive_float(x) for x in _items(text, "numbers")), "values")


def init_value(text: str) -> tuple[str, float | tuple[float, ...]]:
    """``"a=4,4"`` -> ``("a", (4.0, 4.0))``; ``"p=0.5"`` -> ``("p", 0.5)``: one initial value
    of the named activation parameter (finite numbers)."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUES such as a=4,4 or p=0.5 (a parameter of the activation's "
            f"family and one number or one per coefficient); got {text!r}"
        )
    numbers = tuple(_number(x) for x in _items(values, "numbers"))
    return name, numbers[0] if len(numbers) == 1 else numbers


def activation_names(text: str) -> tuple[str, ...]:
    """``"relu,cpaf_relu"`` -> the names, each registered, distinct."""
    from cpaf_jax.activations.registry import known_activations

    names = tuple(_items(text, "activation names"))
    unknown = [a for a in names if a not in known_activations()]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown activation(s) {', '.join(unknown)}; known: {', '.join(known_activations())}"
        )
    return _distinct(names, "activations")


def existing_dir(text: str) -> str:
    """A folder that exists (``--data-dir``); never a silent fallback to another location."""
    path = os.path.expanduser(text)
    if not os.path.isdir(path):
        what = "is a file" if os.path.exists(path) else "does not exist"
        raise argparse.ArgumentTypeError(f"{text!r} {what}; give the folder holding the data")
    return path


def _add_training_options(p: argparse.ArgumentParser) -> None:
    names = ", ".join(_known_activations())
    p.add_argument(
        "--activations",
        type=activation_names,
        help=f"comma-separated names; known: {names}",
    )
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seed", type=non_negative_int, help="seed (>= 0) of a single run (default 0)"
    )
    seeds.add_argument(
        "--seeds",
        type=parse_seeds,
        help="N >= 1 runs seeds 0..N-1 of every activation; 3,7,9 runs those",
    )
    p.add_argument(
        "--epochs", type=positive_int, help="training epochs >= 1 (default: the experiment's)"
    )
    p.add_argument("--batch-size", type=positive_int, help="batch size >= 1 (default 128)")
    rates = p.add_mutually_exclusive_group()
    rates.add_argument(
        "--lr", type=positive_float, help="learning rate > 0 (default: the experiment's)"
    )
    rates.add_argument(
        "--lrs",
        type=positive_floats,
        help="learning rates > 0 to sweep, e.g. 1e-3,3e-3 (one member each)",
    )
    p.add_argument(
        "--train-subset",
        type=positive_int,
        metavar="N",
        help="use the first N >= 1 training images",
    )
    p.add_argument(
        "--validation",
        type=positive_int,
        metavar="N",
        help="hold out N >= 1 training images (a fixed seeded split) and score every run on "
        "them instead of the test set; results.json records eval_split 'validation'",
    )
    p.add_argument(
        "--width",
        type=positive_float,
        metavar="M",
        help="fashion_mnist only: multiply every layer width of the network by M > 0 (a "
        "wider baseline; rounded to whole channels)",
    )
    p.add_argument(
        "--eval-every",
        type=non_negative_int,
        metavar="STEPS",
        help="test-loss evaluation interval in steps (0: per epoch only; default: the "
        "experiment's)",
    )
    p.add_argument(
        "--sharing",
        type=parse_sharing,
        help="activation parameters per element, channel, shared, or axes in -3..2",
    )
    p.add_argument("--k", type=positive_int, help="number of CPAF terms >= 1 (default 2)")
    p.add_argument(
        "--activation-lr",
        type=positive_float,
        help="learning rate > 0 of activation parameters (default: --lr)",
    )
    p.add_argument(
        "--weight-decay",
        type=non_negative_float,
        default=0.0,
        help="decoupled weight decay >= 0 on weights only, never on activations (default 0)",
    )


def _add_sweep_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--init",
        type=init_value,
        action="append",
        metavar="NAME=VALUES",
        help="an initial value of the activation parameter NAME (as the family names it: a, b "
        "for CPAF, p, q for PAU...), one number or one per coefficient; repeat to sweep: "
        "--init a=4,4 --init a=1,1 --init b=2,-2 trains every combination",
    )
    p.add_argument(
        "--init-a",
        type=floats,
        help="initial CPAF scales to sweep: a_i = A for every term",
    )
    p.add_argument(
        "--init-b",
        type=floats,
        help="initial CPAF locations to sweep: b = linspace(B, -B, k)",
    )
    p.add_argument(
        "--no-sweep",
        action="store_true",
        help="run the members one after another: the same as --sweep-strategy loop",
    )
    p.add_argument(
        "--sweep-strategy",
        default="auto",
        choices=("auto", "measure", "vmap", "chunked", "loop"),
        help="how members run: one engine, several dispatch choices (auto: loop on CPU, "
        "vmap or chunks on accelerators)",
    )
    p.add_argument(
        "--cpu-devices",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="expose the CPU as N JAX devices so sweep members run side by side, one per core "
        "(default 0: one per core; 1: a single device)",
    )
    p.add_argument(
        "--trajectory-every",
        type=positive_int,
        metavar="STEPS",
        help="log activation-parameter statistics every STEPS >= 1 steps and plot them",
    )


def _add_io_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        choices=("mnist", "fashion_mnist", "cifar10", "cifar100"),
        help="train on another dataset of the same image shape",
    )
    p.add_argument("--data-dir", type=existing_dir, help="folder holding the dataset files")
    p.add_argument("--out", help="output folder (default runs/EXPERIMENT)")
    p.add_argument(
        "--track",
        choices=("none", "tensorboard", "wandb"),
        default="none",
        help="log metrics to TensorBoard (OUT/tensorboard; extra [tensorboard]) or W&B "
        "(extra [wandb]); default none",
    )
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue interrupted runs in --out from their last epoch checkpoint",
    )
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out; the new run writes beside it and replaces it only "
        "when it finishes",
    )
    p.add_argument("--baseline", help="activation to compare the others against (paired)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def _known_activations() -> list[str]:
    from cpaf_jax.activations.registry import known_activations

    return known_activations()


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``cpaf-train EXPERIMENT [options]`` (``python -m train`` in a checkout)."""
    p = argparse.ArgumentParser(
        prog="cpaf-train",
        description="Train the networks of Ko, Li, Ko (2022) with any activation.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("experiment", choices=EXPERIMENTS, help="which experiment (see below)")
    p.add_argument(
        "--structure",
        type=int,
        choices=(1, 2, 3),
        help="CIFAR structure of Table 3 (cifar10/cifar100 only; default 1)",
    )
    _add_training_options(p)
    _add_sweep_options(p)
    _add_io_options(p)
    distributed.add_options(p, int_at_least)
    _add_fault_options(p)
    return p


def _add_fault_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--debug",
        action="store_true",
        help="on a failed write or checkpoint, print the traceback (default: OUT/error.log)",
    )


def _check_combination(p: argparse.ArgumentParser, args: argparse.Namespace, cfg) -> None:
    """Options valid alone but not together, or ignored by this experiment: argparse errors."""
    cifar = args.experiment.startswith("cifar")
    if args.structure is not None and not cifar:
        p.error("argument --structure: applies to cifar10 and cifar100 only")
    if args.width is not None and args.experiment != "fashion_mnist":
        p.error("argument --width: applies to fashion_mnist only")
    activations = cfg.activations if args.activations is None else args.activations
    from cpaf_jax.activations.registry import family

    cpaf = [a for a in activations if family(a).pairs is not None]
    for option, value in (("--k", args.k), ("--init-a", args.init_a), ("--init-b", args.init_b)):
        if value is not None and not cpaf:
            p.error(
                f"argument {option}: applies to CPAF activations only; none of "
                f"{', '.join(activations)} is one"
            )
    _check_inits(p, args, activations)
    if args.baseline is not None and args.baseline not in activations:
        p.error(
            f"argument --baseline: {args.baseline!r} is not among the activations trained "
            f"({', '.join(activations)})"
        )


def _check_inits(p: argparse.ArgumentParser, args: argparse.Namespace, activations) -> None:
    """``--init NAME=...``: NAME a parameter of some activation's family, not also given by
    ``--init-a`` / ``--init-b``."""
    from cpaf_jax.activations.registry import family

    valid = sorted({n for a in activations for n in family(a).params})
    paired = set()
    for a in activations:
        pairs = family(a).pairs
        if pairs is not None:
            paired |= {pairs[0]} if args.init_a else set()
            paired |= {pairs[1]} if args.init_b else set()
    for name, _ in args.init or ():
        if name not in valid:
            p.error(
                f"argument --init: {name!r} is not a parameter of "
                f"{', '.join(activations)}; their parameters are {', '.join(valid) or 'none'}"
            )
        if name in paired:
            p.error(f"argument --init: {name!r} is also set by --init-a/--init-b; give one")
    values = [(n, v) for n, v in args.init or ()]
    dup = sorted({f"{n}={v}" for n, v in values if values.count((n, v)) > 1})
    if dup:
        p.error(f"argument --init: values given more than once: {', '.join(dup)}")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, object]:
    """Parses and checks ``argv``; returns the arguments and the experiment config.

    Every check (ranges, combinations, the output folder) happens here, before any data is
    loaded or any file written; a failure exits with status 2 and one message.
    """
    from cpaf_jax.experiments.outdir import RunFolderError, check_out_dir

    p = build_parser()
    args = p.parse_args(argv)
    structure = 1 if args.structure is None else args.structure
    cfg = get_config(args.experiment, structure)
    _check_combination(p, args, cfg)
    distributed.check_options(p, args)
    if args.out is None:
        suffix = f"_s{structure}" if args.experiment.startswith("cifar") else ""
        args.out = f"runs/{args.experiment}{suffix}"
    try:
        check_out_dir(args.out, resume=args.resume, overwrite=args.overwrite)
    except RunFolderError as e:
        p.error(str(e))
    return args, cfg


def split_cpu_devices(n: int) -> None:
    """Exposes the CPU as ``n`` JAX devices (0: one per core) before JAX starts."""
    import warnings

    from cpaf_jax.training.meshes import split_cpu

    with warnings.catch_warnings():
        # Only an in-process caller (tests, notebooks) can have started JAX already; it keeps
        # the devices it has.
        warnings.simplefilter("ignore")
        split_cpu(None if n == 0 else n)


def _options(args: argparse.Namespace, cfg, argv: list[str]):
    """The runner's options from checked arguments; ``None`` stays "not given"."""
    from cpaf_jax.experiments.runner import RunOptions

    lrs = args.lrs or ()
    seed = 0 if args.seed is None else args.seed
    return RunOptions(
        activations=cfg.activations if args.activations is None else args.activations,
        seeds=args.seeds if args.seeds is not None else (seed,),
        out=args.out,
        data_dir=args.data_dir,
        dataset=args.dataset,
        train_subset=args.train_subset,
        validation=args.validation,
        width=args.width,
        epochs=args.epochs,
        batch_size=args.batch_size,
        # One rate in --lrs is a single run at that rate, not a sweep of one.
        learning_rate=lrs[0] if len(lrs) == 1 else args.lr,
        learning_rates=lrs if len(lrs) > 1 else (),
        # RunOptions.eval_every: -1 the config's default, None per epoch only.
        eval_every=-1 if args.eval_every is None else (args.eval_every or None),
        sharing=args.sharing,
        activation_kwargs=None if args.k is None else {"k": args.k},
        activation_lr=args.activation_lr,
        trajectory_every=args.trajectory_every,
        sweep=not args.no_sweep,
        track=args.track,
        sweep_strategy=args.sweep_strategy,
        init_a=args.init_a or (),
        init_b=args.init_b or (),
        inits=tuple(args.init or ()),
        weight_decay=args.weight_decay,
        resume=args.resume,
        progress=not args.no_progress,
        baseline=args.baseline,
        plots=not args.no_plots,
        command="python -m train " + " ".join(shlex.quote(a) for a in argv),
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m train``: runs an experiment, ``reproduce`` or ``inspect``.

    Args:
      argv: the arguments after ``python -m train`` (default ``sys.argv[1:]``).

    Returns:
      the exit status: 0 done, 1 a failed write (a read-only or full disk) or checkpoint, 2
      bad input, missing data or an ``--out`` in use, 3 training diverged, 4 several processes
      lost one another (one stopped, hangs or never started), 130 interrupted (finished runs
      are kept; ``--resume`` continues; with ``--overwrite`` the previous run is left as it
      was).
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        args, cfg = parse_args(argv)
    except SystemExit as e:  # argparse's exit (2 for bad input, 0 for -h): a return for callers
        return 0 if e.code is None else e.code
    split_cpu_devices(args.cpu_devices)
    if distributed.requested(args):
        return distributed.leave(_run_processes(args, cfg, argv))
    opts = _options(args, cfg, argv)
    return _run(cfg, opts, overwrite=args.overwrite, debug=args.debug)


def _run_processes(args: argparse.Namespace, cfg, argv: list[str]) -> int:
    """The command as one of several processes (``distributed``); returns the exit status."""
    from jax.errors import JaxRuntimeError

    from cpaf_jax.training.hosts import ProcessGroupError, where

    try:
        distributed.start(args)
    except ProcessGroupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        distributed.check_same_settings(args)
        return _run(cfg, _options(args, cfg, argv), overwrite=args.overwrite, debug=args.debug)
    except distributed.SettingsMismatch as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ProcessGroupError, JaxRuntimeError) as e:  # a collective with a process gone
        print(
            f"error: {where()} lost the others ({str(e).strip().splitlines()[0]}); stop every "
            "process, then start them all again with --resume",
            file=sys.stderr,
        )
        return distributed.EXIT_LOST


def _run(cfg, opts, *, overwrite: bool, debug: bool = False) -> int:
    """Runs the experiment inside its locked output folder; returns the exit status."""
    from cpaf_jax.data import DataError
    from cpaf_jax.experiments import faults
    from cpaf_jax.experiments.outdir import RunFolder, RunFolderError
    from cpaf_jax.experiments.reference import describe, reference_for
    from cpaf_jax.experiments.report import ReportError, table
    from cpaf_jax.experiments.runner import run_experiment
    from cpaf_jax.experiments.tracking import TrackingUnavailable
    from cpaf_jax.training import ResumeMismatch, TrainingDiverged
    from cpaf_jax.training.checkpoints import CheckpointWriteError, DiskFull
    from cpaf_jax.training.hosts import is_writer

    own = RunFolder(opts.out, resume=opts.resume, overwrite=overwrite, command=opts.command)
    folder = distributed.shared_folder(own)  # several processes: process 0 holds it
    try:
        line = functools.partial(_interrupted, opts.out, folder)
        # Ctrl-C releases what this process holds (nothing on the processes after the first).
        with folder as write_dir, faults.interrupt_cleanup(own.abandon, line):
            with faults.library_logs_to(None if debug else faults.log_path(write_dir)):
                results = run_experiment(cfg, dataclasses.replace(opts, out=write_dir))
    except RunFolderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (DataError, ReportError, ResumeMismatch, DiskFull, TrackingUnavailable,
            TrainingDiverged, KeyboardInterrupt) as e:  # fmt: skip
        # With --overwrite the new run wrote into a staging folder, now discarded.
        kept = f"; the previous run in {opts.out} is unchanged" if folder.staging else ""
        return _failed(e, opts.out, kept)
    except (OSError, CheckpointWriteError) as e:
        return _io_failed(e, opts.out, folder.staging is not None, debug)
    if is_writer():
        reference = reference_for(results["runs"], cfg.name)
        print(table(results["runs"], cfg, reference))
        if reference:
            print("\n" + "\n".join(describe(reference, results["settings"])))
        print(f"\nresults: {opts.out}/results.json, report: {opts.out}/report.md")
    return 0


def _io_failed(e: BaseException, out: str, staged: bool, debug: bool) -> int:
    """One line for a failed write or checkpoint, its traceback in a log (or on screen)."""
    from cpaf_jax.experiments import faults

    kept = f"; the previous run in {out} is unchanged" if staged else ""
    if debug:
        import traceback

        traceback.print_exception(e, file=sys.stderr)
        print(f"error: {faults.describe(e)}{kept}", file=sys.stderr)
        return 1
    # A staged run's folder is gone; the previous run's folder is not ours to write.
    log = faults.log_path(None if staged else out)
    where = f" (details: {log})" if faults.write_log(log, e) else ""
    print(f"error: {faults.describe(e)}{kept}{where}", file=sys.stderr)
    return 1


def _interrupted(out: str, folder) -> str:
    """The line Ctrl-C prints once ``folder`` (a ``RunFolder``) is entered."""
    if folder.staging is not None:
        return f"interrupted; the previous run in {out} is unchanged"
    return (
        f"interrupted: finished runs are in {out}/results.json; rerun the same command with "
        "--resume to continue from the last epoch checkpoints"
    )


def _failed(e: BaseException, out: str, kept: str) -> int:
    """Prints why a run stopped; returns the exit status."""
    from cpaf_jax.training import TrainingDiverged
    from cpaf_jax.training.checkpoints import DiskFull

    if isinstance(e, DiskFull):
        print(f"error: {e}{kept}", file=sys.stderr)
        return 1
    if isinstance(e, TrainingDiverged):
        print(f"error: {e}{kept}", file=sys.stderr)
        return 3
    if not isinstance(e, KeyboardInterrupt):
        print(f"error: {e}{kept}", file=sys.stderr)
        return 2
    if kept:
        print(f"\ninterrupted{kept}; the new run's output was discarded", file=sys.stderr)
    else:
        print(
            f"\ninterrupted: finished runs are in {out}/results.json; rerun the same "
            "command with --resume to continue from the last epoch checkpoints",
            file=sys.stderr,
        )
    return 130
