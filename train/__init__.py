"""Experiment configs and the ``python -m train`` command that runs the paper's experiments."""
