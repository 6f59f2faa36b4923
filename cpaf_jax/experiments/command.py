"""``python -m train`` / ``cpaf-train``: dispatches to run (the default), reproduce, inspect,
finetune or build-kernel.

``cpaf-train EXPERIMENT [options]`` runs an experiment (``cpaf_jax.experiments.cli``);
``cpaf-train reproduce`` every experiment of the paper and REPRODUCTION.md
(``cpaf_jax.experiments.reproduce``); ``cpaf-train inspect RUN_DIR`` a trained model's
activations (``cpaf_jax.experiments.inspect_cmd``); ``cpaf-train finetune --from RUN_DIR --to
FAMILY`` swaps a trained run's activations and trains on (``cpaf_jax.experiments.finetune``);
``cpaf-train build-kernel`` builds the CPU kernel ahead of training
(``cpaf_jax.ops.build_kernel``). Each sub-command imports only what it needs, so the command
modules never import one another in a cycle.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Runs the sub-command named by ``argv[0]`` (``reproduce``, ``inspect``, ``finetune``,
    ``build-kernel``)
    or an experiment.

    Args:
      argv: the arguments after the command name; ``None`` (the console script, ``python -m
        train``): ``sys.argv[1:]``, run as the whole process, so that Ctrl-C at any point exits
        with status 130 and one line (``cpaf_jax.experiments.faults.as_process``).

    Returns:
      the sub-command's exit status.
    """
    if argv is None:
        from cpaf_jax.experiments.faults import as_process

        return as_process(lambda: _dispatch(sys.argv[1:]))
    return _dispatch(list(argv))


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "reproduce":
        from cpaf_jax.experiments.reproduce import main as reproduce_main

        return reproduce_main(argv[1:])
    if argv and argv[0] == "build-kernel":
        from cpaf_jax.ops.build_kernel import main as build_main

        return build_main(argv[1:])
    if argv and argv[0] == "finetune":
        from cpaf_jax.experiments.finetune import main as finetune_main

        return finetune_main(argv[1:])
    if argv and argv[0] == "swap-study":
        from cpaf_jax.experiments.swap_study import main as study_main

        return study_main(argv[1:])
    if argv and argv[0] == "inspect":
        from cpaf_jax.experiments.inspect_cmd import main as inspect_main

        return inspect_main(argv[1:])
    from cpaf_jax.experiments.cli import main as run_main

    return run_main(argv)


if __name__ == "__main__":
    sys.exit(main())
