"""``python -m train`` from a checkout: the same command as the ``cpaf-train`` console script."""

import sys

from cpaf_jax.experiments.command import main

if __name__ == "__main__":
    sys.exit(main())
