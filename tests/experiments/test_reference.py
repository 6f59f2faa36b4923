"""A one-seed run of 4.2 is set beside the committed reproduction's seeds, and its report says
which settings ran."""

from __future__ import annotations

import pytest

from cpaf_jax.experiments import runs_csv
from cpaf_jax.experiments.configs import get_config
from cpaf_jax.experiments.reference import REFERENCE_CSV, describe, reference_for
from cpaf_jax.experiments.report import overrides, render, table
from cpaf_jax.experiments.repro_stats import t_interval


def run(act: str, acc: float, **settings) -> dict:
    """A finished run entry as the runner writes it (4.2's defaults unless overridden)."""
    sharing = None if act in ("relu", "elu", "tanh") else "element"
    base = {"dataset": "fashion_mnist", "learning_rate": 1e-3, "epochs": 10, "batch_size": 128}
    return {"activation": act, "seed": 0, "test_accuracy": acc, "test_loss": 1.0 - acc,
            "failed_step": None, "epoch_seconds": [1.0], "time_to_accuracy": None,
            "sharing": sharing, "activation_kwargs": None, **base, **settings}  # fmt: skip


def _committed(label: str, lr: str) -> list[float]:
    rows = runs_csv.read(REFERENCE_CSV)
    return [
        float(r["test_accuracy"])
        for r in rows
        if (r["stage"], r["label"], r["lr"], r["split"]) == ("final", label, lr, "test")
    ]


def test_main_job_trains_the_papers_four_with_the_learned_elu():
    cfg = get_config("fashion_mnist")
    assert cfg.activations == ("prelu", "elu_learned", "cpaf_sigmoid", "cpaf_relu")
    assert cfg.paper["elu_learned"]["test_accuracy"] == 87.05


def test_reference_is_the_committed_seeds_of_the_same_row():
    runs = [run(a, 0.88) for a in get_config("fashion_mnist").activations]
    ref = reference_for(runs, "fashion_mnist")
    assert set(ref) == {"prelu", "elu_learned", "cpaf_sigmoid", "cpaf_relu"}
    for label, r in ref.items():
        accs = _committed(label, "0.001")
        assert len(accs) >= 20 and r["n"] == len(accs) and r["lr"] == "0.001"
        assert r["mean"] == pytest.approx(t_interval(accs)["mean"])
        assert r["low"] < r["mean"] < r["high"] and r["epochs"] == "10"


def test_reference_follows_the_rate_where_the_reproduction_trained_it():
    ref = reference_for([run("prelu", 0.9, learning_rate=3e-3)], "fashion_mnist")
    assert ref["prelu"]["lr"] == "0.003"
    assert ref["prelu"]["mean"] == pytest.approx(t_interval(_committed("prelu", "0.003"))["mean"])
    # A rate the reproduction never trained falls back to the paper's, and says so.
    other = reference_for([run("prelu", 0.9, learning_rate=5e-4)], "fashion_mnist")
    assert other["prelu"]["lr"] == "0.001"


def test_no_reference_for_other_settings_experiments_or_a_missing_file(tmp_path):
    assert reference_for([run("cpaf_relu", 0.9, activation_kwargs={"k": 7})], "fashion_mnist") == {}
    assert reference_for([run("cpaf_relu", 0.9, sharing="shared")], "fashion_mnist") == {}
    assert reference_for([run("relu", 0.9)], "cifar10") == {}
    missing = str(tmp_path / "none.csv")
    assert reference_for([run("prelu", 0.9)], "fashion_mnist", missing) == {}


def test_terminal_table_prints_the_reference_beside_one_seed():
    cfg = get_config("fashion_mnist")
    runs = [run("prelu", 0.8812), run("relu", 0.87)]
    ref = reference_for(runs, "fashion_mnist")
    text = table(runs, cfg, ref)
    head, prelu, relu = text.splitlines()
    assert "ref acc %" in head and "ref 95% CI" in head
    r = ref["prelu"]
    assert f"{r['mean'] * 100:.2f}" in prelu and f"[{r['low'] * 100:.2f}, " in prelu
    assert "88.12" in prelu
    assert relu.rstrip().endswith(f"{ref['relu']['n']:>3}")
    assert "ref acc" not in table(runs, cfg)


def test_the_reference_note_says_when_a_run_is_not_comparable():
    runs = [run("prelu", 0.80, epochs=1)]
    ref = reference_for(runs, "fashion_mnist")
    settings = {"epochs": 1, "train_images": 2000, "learning_rate": 1e-3, "eval_split": "test"}
    lines = describe(ref, settings)
    text = " ".join(lines)
    assert "20 seeds, 10 epochs, lr 0.001, 60,000 training images" in text
    assert "differs from the reference (1 epochs, 2,000 training images)" in text
    same = dict(settings, epochs=10, train_images=60000)
    assert "differs" not in " ".join(describe(ref, same))


def test_report_states_the_settings_that_ran():
    cfg = get_config("fashion_mnist")
    runs = [run("prelu", 0.8, epochs=1, learning_rate=3e-3)]
    assert overrides(cfg, runs) == ["epochs 1 (default 10)", "learning rate 0.003 (default 0.001)"]
    md = render(cfg, runs, baseline=None, command="cpaf-train fashion_mnist --epochs 1", plots=[])
    assert "1 epochs." in md and "This run changed these defaults: epochs 1 (default 10)" in md
    assert overrides(cfg, [run("prelu", 0.8)]) == []
    assert "This run changed" not in render(cfg, [run("prelu", 0.8)], baseline=None, command="c",
                                            plots=[])  # fmt: skip
