"""The paper's experiments: configs, the runner, statistics, reports, plots and the CLI.

``python -m train`` (from a checkout) and the ``cpaf-train`` console script both call
``cpaf_jax.experiments.cli.main``.
"""
