"""Plots: skipped with one line when matplotlib is missing (a plain install), and the
accuracy curves beside the loss curves."""

from __future__ import annotations

import io
import json
import sys

import matplotlib.figure
import pytest
from fakes import write_idx_dataset

from cpaf_jax.experiments import plots
from cpaf_jax.experiments.cli import main


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Makes ``import matplotlib`` fail as in an install without the [plots] extra."""
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_available_without_matplotlib_says_so_in_one_line(no_matplotlib, capsys):
    buf = io.StringIO()
    assert plots.available(file=buf) is False
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("plots skipped:") and 'pip install "cpaf-jax[plots]"' in lines[0]
    # The default goes to stderr, and explain=False stays silent.
    assert plots.available() is False
    assert capsys.readouterr().err.count("\n") == 1
    assert plots.available(explain=False) is False
    assert capsys.readouterr().err == ""


def test_plot_function_without_matplotlib_raises_naming_the_extra(no_matplotlib, tmp_path):
    runs = [{"activation": "relu", "seed": 0, "curve": [[0, 1.0]]}]
    with pytest.raises(plots.PlotsUnavailable, match=r"cpaf-jax\[plots\]"):
        plots.loss_curves(runs, str(tmp_path / "x.png"), "t")
    assert issubclass(plots.PlotsUnavailable, ImportError)


def test_available_with_matplotlib(capsys):
    assert plots.available() is True
    assert capsys.readouterr().err == ""


def test_command_without_matplotlib_writes_results_and_report(no_matplotlib, tmp_path, capsys):
    write_idx_dataset(tmp_path / "data" / "mnist", n_train=64, n_test=32)
    out = tmp_path / "out"
    argv = ["mnist_features", "--data-dir", str(tmp_path / "data"), "--epochs", "1"]
    argv += ["--batch-size", "32", "--activations", "relu", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "plots skipped" in line] == [
        "plots skipped: matplotlib is not installed; to get them: " + plots.INSTALL_HINT
    ]
    res = json.loads((out / "results.json").read_text())
    assert [r["activation"] for r in res["runs"]] == ["relu"]
    report = (out / "report.md").read_text()
    assert "relu" in report and ".png" not in report
    assert not list(out.glob("*.png"))


def _drawn_lines(monkeypatch, draw) -> list:
    """Calls ``draw()`` and returns the lines of the figure it saves, as (label, x, y)."""
    saved = []
    real_savefig = matplotlib.figure.Figure.savefig

    def savefig(fig, path, **kwargs):
        saved.append(
            [
                (ln.get_label(), list(ln.get_xdata()), list(ln.get_ydata()))
                for ln in fig.axes[0].lines
            ]
        )
        return real_savefig(fig, path, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    draw()
    assert len(saved) == 1
    return saved[0]


def test_accuracy_curves_plot_acc_curve_in_percent(monkeypatch, tmp_path):
    runs = [
        {
            "activation": "relu",
            "seed": 0,
            "curve": [[0, 2.3], [50, 0.9]],
            "acc_curve": [[0, 0.10], [50, 0.70]],
        },
        {"activation": "relu", "seed": 1, "curve": [[0, 2.2]], "acc_curve": [[0, 0.12]]},
        {"activation": "cpaf_relu", "seed": 0, "curve": [[0, 2.1]], "acc_curve": []},
    ]
    path = tmp_path / "test_accuracy.png"
    lines = _drawn_lines(
        monkeypatch, lambda: plots.accuracy_curves(runs, str(path), "Test accuracy")
    )
    # One line per run with points; a run without points draws nothing.
    assert [(x, y) for _, x, y in lines] == [([0, 50], [10.0, 70.0]), ([0], [12.0])]
    assert [label for label, _, _ in lines][0] == "relu"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loss = _drawn_lines(
        monkeypatch, lambda: plots.loss_curves(runs, str(tmp_path / "loss.png"), "Test loss")
    )
    assert [y for _, _, y in loss] == [[2.3, 0.9], [2.2], [2.1]]


def test_activation_shapes_label_axes_and_every_curve(monkeypatch, tmp_path):
    import numpy as np

    y = np.linspace(-2.0, 2.0, 5)
    curves = {f"act{i}": (y, y, np.stack([y, 2 * y, 3 * y])) for i in (1, 2, 3, 4)}
    saved = []
    real_savefig = matplotlib.figure.Figure.savefig

    def savefig(fig, path, **kwargs):
        saved.append(fig)
        return real_savefig(fig, path, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    path = tmp_path / "shapes.png"
    plots.activation_shapes(curves, str(path), "cpaf_relu: learned against initial")
    (fig,) = saved
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert [ax.get_title() for ax in panels] == ["act1", "act2", "act3", "act4"]
    for ax in panels:
        assert ax.get_xlabel() and ax.get_ylabel()
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == ["initial", "learned (3 units)"]
        assert ax.get_legend().get_texts()[0].get_fontsize() >= 8
    assert fig._suptitle.get_text() == "cpaf_relu: learned against initial"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_titles_name_the_network_and_dataset_once():
    from cpaf_jax.experiments.configs import get_config
    from cpaf_jax.experiments.figures import plot_title

    assert plot_title(get_config("fashion_mnist"), "fashion_mnist") == "4.2 network, Fashion-MNIST"
    assert plot_title(get_config("cifar10", 2), "cifar10") == "4.3 network (structure 2), CIFAR-10"
    assert plot_title(get_config("mnist_features"), "fashion_mnist") == (
        "4.1 network, Fashion-MNIST"
    )
