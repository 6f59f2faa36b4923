"""``python -m train EXPERIMENT [options]``: run one of the paper's experiments."""

from __future__ import annotations

import argparse
import shlex
import sys

from cpaf_jax.experiments.configs import EXPERIMENTS, get_config

_EPILOG = """experiments:
  mnist_features   4.1: conv 16-8-4-2 to a 2-D feature, MNIST (Fig. 9-11)
  fashion_mnist    4.2: conv 16-32-4 + dense 30, Fashion-MNIST (Table 2, Fig. 12-14)
  cifar10          4.3: CIFAR-10, --structure 1|2|3 (Tables 3-4, 6, Fig. 15)
  cifar100         4.3: CIFAR-100, --structure 1|2|3 (Tables 3, 5, 6)

  reproduce         every experiment above, then REPRODUCTION.md (python -m train reproduce -h)
  inspect RUN_DIR   summarise a trained model's activations (python -m train inspect -h)

examples:
  python -m train fashion_mnist                       # the paper's four activations
  python -m train fashion_mnist --seeds 5 --baseline prelu
  python -m train mnist_features --dataset fashion_mnist --epochs 2
  python -m train cifar10 --structure 2 --data-dir ~/data
"""


def non_negative_int(text: str) -> int:
    """``"4"`` -> 4; argparse error for anything that is not an integer >= 0."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {n}")
    return n


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"5"`` -> seeds 0..4; ``"3,7,9"`` -> those seeds."""
    try:
        if "," in text:
            seeds = tuple(int(s) for s in text.split(",") if s.strip())
        else:
            seeds = tuple(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds takes a count N (seeds 0..N-1) or a list like 3,7,9; got {text!r}"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds needs at least one seed")
    return seeds


def parse_sharing(text: str):
    """``"element"``/``"channel"``/``"shared"`` as is; ``"0,1"`` -> the axes ``(0, 1)``."""
    if text in ("element", "channel", "shared"):
        return text
    try:
        return tuple(int(a) for a in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sharing is element, channel, shared or comma-separated axes; got {text!r}"
        ) from None


def floats(text: str) -> tuple[float, ...]:
    """``"1e-3,3e-3"`` -> ``(0.001, 0.003)``; argparse error on anything else."""
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m train EXPERIMENT [options]``."""
    from cpaf_jax.activations.registry import known_activations

    p = argparse.ArgumentParser(
        prog="python -m train",
        description="Train the networks of Ko, Li, Ko (2022) with any activation.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("experiment", choices=EXPERIMENTS, help="which experiment (see below)")
    p.add_argument(
        "--structure",
        type=int,
        default=1,
        choices=(1, 2, 3),
        help="CIFAR structure of Table 3 (cifar10/cifar100 only)",
    )
    names = ", ".join(known_activations())
    p.add_argument(
        "--activations",
        type=lambda s: tuple(a for a in s.split(",") if a),
        help=f"comma-separated names; known: {names}",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of a single run (default 0)")
    p.add_argument(
        "--seeds",
        type=parse_seeds,
        help="N runs seeds 0..N-1 of every activation; 3,7,9 runs those",
    )
    p.add_argument("--epochs", type=int, help="training epochs (default: the experiment's)")
    p.add_argument("--batch-size", type=int, help="batch size (default 128)")
    p.add_argument("--lr", type=float, help="learning rate (default: the experiment's)")
    p.add_argument("--train-subset", type=int, metavar="N", help="use the first N training images")
    p.add_argument(
        "--eval-every",
        type=int,
        default=-1,
        metavar="STEPS",
        help="test-loss evaluation interval in steps (0: per epoch only)",
    )
    p.add_argument(
        "--sharing",
        type=parse_sharing,
        help="activation parameters per element, channel, shared, or axes",
    )
    p.add_argument("--k", type=int, help="number of CPAF terms (default 2)")
    p.add_argument(
        "--lrs",
        type=floats,
        default=(),
        help="learning rates to sweep, e.g. 1e-3,3e-3 (one member each)",
    )
    p.add_argument(
        "--init-a",
        type=floats,
        default=(),
        help="initial CPAF scales to sweep: a_i = A for every term",
    )
    p.add_argument(
        "--init-b",
        type=floats,
        default=(),
        help="initial CPAF locations to sweep: b = linspace(B, -B, k)",
    )
    p.add_argument(
        "--no-sweep",
        action="store_true",
        help="train seeds one after another with per-epoch checkpoints (--resume) "
        "instead of as one sweep",
    )
    p.add_argument(
        "--sweep-strategy",
        default="auto",
        choices=("auto", "measure", "vmap", "chunked", "loop"),
        help="how sweep members run (auto: loop on CPU, vmap on accelerators)",
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
        type=int,
        metavar="STEPS",
        help="log activation-parameter statistics every STEPS steps and plot them (with --no-sweep "
        "or a single seed)",
    )
    p.add_argument(
        "--activation-lr", type=float, help="learning rate of activation parameters (default: --lr)"
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        help="decoupled weight decay on weights only, never on activations",
    )
    p.add_argument(
        "--dataset",
        choices=("mnist", "fashion_mnist", "cifar10", "cifar100"),
        help="train on another dataset of the same image shape",
    )
    p.add_argument("--data-dir", help="folder holding the dataset files")
    p.add_argument("--out", help="output folder (default runs/EXPERIMENT)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue interrupted runs from their last epoch checkpoint",
    )
    p.add_argument("--baseline", help="activation to compare the others against (paired)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument(
        "--track",
        choices=("none", "tensorboard", "wandb"),
        default="none",
        help="log metrics to TensorBoard (OUT/tensorboard; extra [tensorboard]) or W&B "
        "(extra [wandb]); default none",
    )
    return p


def _split_cpu(n: int) -> None:
    import warnings

    from cpaf_jax.training.meshes import split_cpu

    with warnings.catch_warnings():
        # Only an in-process caller (tests, notebooks) can have started JAX already; it keeps
        # the devices it has.
        warnings.simplefilter("ignore")
        split_cpu(n or None)


def main(argv: list[str] | None = None) -> int:
    """``python -m train``: runs an experiment, ``reproduce`` or ``inspect``.

    Args:
      argv: the arguments after ``python -m train`` (default ``sys.argv[1:]``).

    Returns:
      the exit status: 0 done, 2 bad input or missing data, 3 training diverged, 130
      interrupted (finished runs are kept; ``--resume`` continues).
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "reproduce":
        from cpaf_jax.experiments.reproduce import main as reproduce_main

        _split_cpu(0)
        return reproduce_main(argv[1:])
    if argv and argv[0] == "inspect":
        from cpaf_jax.experiments.inspect_cmd import main as inspect_main

        return inspect_main(argv[1:])
    args = build_parser().parse_args(argv)
    _split_cpu(args.cpu_devices)
    from cpaf_jax.activations.registry import known_activations
    from cpaf_jax.data import DataError
    from cpaf_jax.experiments.report import table
    from cpaf_jax.experiments.runner import RunOptions, run_experiment
    from cpaf_jax.training.loop import TrainingDiverged

    cfg = get_config(args.experiment, args.structure)
    activations = args.activations or cfg.activations
    unknown = [a for a in activations if a not in known_activations()]
    if unknown:
        print(
            f"error: unknown activation(s) {unknown}; known: {known_activations()}", file=sys.stderr
        )
        return 2
    suffix = f"_s{args.structure}" if args.experiment.startswith("cifar") else ""
    opts = RunOptions(
        activations=tuple(activations),
        seeds=args.seeds or (args.seed,),
        out=args.out or f"runs/{args.experiment}{suffix}",
        data_dir=args.data_dir,
        dataset=args.dataset,
        train_subset=args.train_subset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        eval_every=None if args.eval_every == 0 else args.eval_every,
        sharing=args.sharing,
        activation_kwargs={"k": args.k} if args.k else None,
        activation_lr=args.activation_lr,
        trajectory_every=args.trajectory_every,
        sweep=not args.no_sweep,
        sweep_strategy=args.sweep_strategy,
        learning_rates=args.lrs,
        init_a=args.init_a,
        init_b=args.init_b,
        weight_decay=args.weight_decay,
        resume=args.resume,
        progress=not args.no_progress,
        baseline=args.baseline,
        plots=not args.no_plots,
        command="python -m train " + " ".join(shlex.quote(a) for a in argv),
    )
    try:
        results = run_experiment(cfg, opts)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished runs are in {opts.out}/results.json; rerun the same "
            "command with --resume to continue from the last epoch checkpoints",
            file=sys.stderr,
        )
        return 130
    print(table(results["runs"], cfg))
    print(f"\nresults: {opts.out}/results.json, report: {opts.out}/report.md")
    return 0
