"""``python -m train`` from a checkout: the same command as the ``cpaf-train`` console script."""

import os
import signal
import sys


def _interrupted_at_start(signum, frame) -> None:
    # Ctrl-C while JAX is imported, before the command installs its own handler: raised as
    # KeyboardInterrupt there it can be swallowed by JAX's garbage-collector callback.
    os.write(2, b"\ninterrupted\n")
    os._exit(130)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _interrupted_at_start)

from cpaf_jax.experiments.command import main  # noqa: E402 - after the handler

if __name__ == "__main__":
    sys.exit(main())
