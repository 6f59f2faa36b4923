"""``--init NAME=VALUES``: initial values of any family's parameters, swept per activation."""

from __future__ import annotations

import pytest

from cpaf_jax.experiments import cli
from cpaf_jax.experiments.runner import init_grid


def _opts(tmp_path, *argv: str):
    argv = ["fashion_mnist", *argv, "--out", str(tmp_path / "run")]
    args, cfg = cli.parse_args(argv)
    return cli._options(args, cfg, argv)


def test_each_name_is_swept_and_goes_to_the_families_that_have_it(tmp_path):
    opts = _opts(
        tmp_path,
        *("--activations", "cpaf_relu,pau,relu"),
        *("--init", "a=4,4", "--init", "a=1,1", "--init", "b=2,-2", "--init", "p=0.5"),
    )
    assert init_grid(opts, "cpaf_relu") == [
        {"a": (4.0, 4.0), "b": (2.0, -2.0)},
        {"a": (1.0, 1.0), "b": (2.0, -2.0)},
    ]
    assert init_grid(opts, "pau") == [{"p": 0.5}]
    assert init_grid(opts, "relu") == [{}]


def test_the_older_pair_options_keep_table_1s_pattern(tmp_path):
    opts = _opts(
        tmp_path, "--activations", "cpaf_relu", "--k", "3", "--init-a", "2", "--init-b", "1"
    )
    assert init_grid(opts, "cpaf_relu") == [{"a": (2.0, 2.0, 2.0), "b": (1.0, 0.0, -1.0)}]
    both = _opts(tmp_path, "--activations", "cpaf_relu", "--init-a", "2", "--init", "b=3,-3")
    assert init_grid(both, "cpaf_relu") == [{"a": (2.0, 2.0), "b": (3.0, -3.0)}]


@pytest.mark.parametrize("text", ["a", "=1", "a=", "1a=2"])
def test_malformed_init_values_are_refused(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        cli.init_value(text)
