"""The paper's reproduction as data: every ``python -m train`` command of each stage.

Stages (``python -m train reproduce --stage X``):

* ``tune``: 4.2's network, each row at the learning rates ``TUNE_LRS`` on a validation split of
  ``VALIDATION_IMAGES`` training images (never the test set), ``TUNE_SEEDS`` seeds,
  ``EPOCHS`` epochs; a row's rate is the one with the highest mean validation accuracy.
* ``final``: 4.2 on the test set at the row's chosen rate and at the paper's ``PAPER_LR``
  (one command sweeping both; one rate when they coincide), ``MAIN_SEEDS`` seeds for the main
  activations and frozen CPAF, ``EXTRA_SEEDS`` for APL, PAU, Swish and the matched baselines.
* ``ablation``: CPAF-sigmoid and CPAF-ReLU, k = 1..4 x element/channel/shared, at
  ``PAPER_LR``, ``ABLATION_SEEDS`` seeds; k != 2 starts from Table 1's a_i scaled by 2/k.
* ``features``: 4.1's network on Fashion-MNIST (MNIST cannot be downloaded here), with a
  PReLU row.

A row is one command writing ``<out>/<stage>/<label>/`` (``<out>/<part>/<stage>/<label>/`` for a
row with a ``part``); its activation trains in the folder's ``<activation>/`` with per-epoch
checkpoints, so ``--resume`` continues it. The stages derived from runs.csv (re-tuning on a wider
grid, more seeds, longer training) are in ``cpaf_jax.experiments.retuning``.
"""

from __future__ import annotations

import dataclasses
import os

TUNE_LRS = (3e-4, 1e-3, 3e-3)
PAPER_LR = 1e-3
EPOCHS = 10
TUNE_SEEDS = 3
MAIN_SEEDS = 20
EXTRA_SEEDS = 10
ABLATION_SEEDS = 5
FEATURES_SEEDS = 10
VALIDATION_IMAGES = 10_000  # as many as the test set; training keeps 50,000
STAGES = ("tune", "final", "ablation", "features")

#: 4.2's activations compared pairwise (all pairs, Holm-adjusted), tanh included.
MAIN = ("prelu", "elu", "elu_learned", "cpaf_sigmoid", "cpaf_relu", "relu", "tanh")
#: Other parametric activations of 4.2's table, at fewer seeds.
EXTRA = ("apl", "pau", "swish")
FEATURES_ACTIVATIONS = ("sigmoid", "relu", "prelu", "cpaf_sigmoid", "cpaf_relu")


def fashion_net_weights(width: float = 1.0) -> int:
    """Trainable weights and biases of 4.2's FashionNet with ReLU at a width multiplier.

    The layers of ``cpaf_jax.models.FashionNet`` (channels 16, 32, 4 and dense 30, each times
    ``width`` rounded): conv1 3x3x1, conv2 3x3, conv3 3x3 (3x3 output), dense, 10 classes.
    """
    c1, c2, c3, h = (max(1, round(n * width)) for n in (16, 32, 4, 30))
    return 10 * c1 + (9 * c1 + 1) * c2 + (9 * c2 + 1) * c3 + (9 * c3 + 1) * h + (h + 1) * 10


#: Activation elements of FashionNet (26*26*16 + 11*11*32 + 3*3*4 + 30).
FASHION_ELEMENTS = 26 * 26 * 16 + 11 * 11 * 32 + 3 * 3 * 4 + 30


def matched_width(target: int, step: float = 0.01, top: float = 6.0) -> float:
    """The width multiplier (a multiple of ``step``) whose ReLU FashionNet has the weight count
    nearest ``target``."""
    widths = [round(i * step, 10) for i in range(int(1 / step), int(top / step) + 1)]
    return min(widths, key=lambda w: abs(fashion_net_weights(w) - target))


#: The wider ReLU baseline: as many weights as FashionNet with per-element CPAF (k = 2: four
#: parameters per activation element).
WIDE_RELU_WIDTH = matched_width(fashion_net_weights() + 4 * FASHION_ELEMENTS)


@dataclasses.dataclass(frozen=True)
class Row:
    """One ``python -m train`` command of a stage.

    Attributes:
      stage, label: the folder ``<stage>/<label>`` and the row's name in the tables.
      experiment, activation: what ``python -m train`` trains.
      seeds, epochs: per member. lrs: the learning rates swept (empty: chosen at run time).
      first_seed: the members' seeds are ``first_seed .. first_seed + seeds - 1`` (a seed's
        value, not its position, sets the initial weights and the data order).
      k, sharing, width: ``--k``, ``--sharing``, ``--width`` (``None``: not given).
      validation: ``--validation`` images (``None``: scored on the test set).
      dataset: ``--dataset`` (``None``: the experiment's).
      part: a subfolder of ``out`` for rows that share a stage and label (more seeds, another
        rate); ``""``: none.
    """

    stage: str
    label: str
    experiment: str
    activation: str
    seeds: int
    epochs: int = EPOCHS
    lrs: tuple[float, ...] = ()
    k: int | None = None
    sharing: str | None = None
    width: float | None = None
    validation: int | None = None
    dataset: str | None = None
    first_seed: int = 0
    part: str = ""

    def root(self, out: str) -> str:
        """The folder holding ``<stage>/<label>/``: ``out``, or ``out/<part>``."""
        return os.path.join(out, self.part) if self.part else out

    def folder(self, out: str) -> str:
        """The command's ``--out``: ``<root>/<stage>/<label>``."""
        return os.path.join(self.root(out), self.stage, self.label)

    def seed_values(self) -> tuple[int, ...]:
        """The members' seeds."""
        return tuple(range(self.first_seed, self.first_seed + self.seeds))

    def _seed_argv(self) -> list[str]:
        if self.first_seed == 0:
            return ["--seeds", str(self.seeds)]
        if self.seeds == 1:  # one number after --seeds is a count
            return ["--seed", str(self.first_seed)]
        return ["--seeds", ",".join(str(s) for s in self.seed_values())]

    def argv(self, out: str, lrs: tuple[float, ...] | None = None) -> list[str]:
        """The command's arguments (after ``python -m train``), writing into ``out``."""
        lrs = tuple(sorted(lrs if lrs is not None else self.lrs))
        if not lrs:
            raise ValueError(f"row {self.stage}/{self.label} has no learning rate yet")
        rate = (
            ["--lr", f"{lrs[0]:g}"] if len(lrs) == 1 else ["--lrs", ",".join(f"{r:g}" for r in lrs)]
        )  # noqa: E501
        argv = [self.experiment, "--activations", self.activation, *self._seed_argv()]
        argv += ["--epochs", str(self.epochs), *rate, "--eval-every", "0", "--no-plots"]
        options = (
            ("--k", self.k),
            ("--sharing", self.sharing),
            ("--width", self.width),
            ("--validation", self.validation),
            ("--dataset", self.dataset),
        )
        for opt, value in options:
            if value is not None:
                argv += [opt, f"{value:g}" if isinstance(value, float) else str(value)]
        return argv + ["--out", out]


def fashion_rows(stage: str, seeds_of, **kw) -> list[Row]:
    """4.2's rows: the main and extra activations, the controls and the matched baselines."""
    rows = [Row(stage, a, "fashion_mnist", a, seeds_of(a), **kw) for a in MAIN + EXTRA]
    for a in ("cpaf_sigmoid_frozen", "cpaf_relu_frozen", "relu_bias"):
        rows.append(Row(stage, a, "fashion_mnist", a, seeds_of(a), **kw))
    rows.append(
        Row(
            stage,
            "relu_wide",
            "fashion_mnist",
            "relu",
            seeds_of("relu_wide"),
            width=WIDE_RELU_WIDTH,
            **kw,
        )  # fmt: skip
    )
    # He et al.'s channel-wise PReLU (4.2's prelu is per element, like CPAF).
    rows.append(
        Row(
            stage,
            "prelu_channel",
            "fashion_mnist",
            "prelu",
            seeds_of("prelu_channel"),
            sharing="channel",
            **kw,
        )  # fmt: skip
    )
    return rows


def final_seeds(label: str) -> int:
    """Seeds of a final row: ``MAIN_SEEDS`` for the main activations and frozen CPAF (compared
    pairwise), ``EXTRA_SEEDS`` for the others."""
    frozen = label.endswith("_frozen")
    return MAIN_SEEDS if label in MAIN or frozen else EXTRA_SEEDS


def stage_rows(stage: str) -> list[Row]:
    """Every row of a stage, in the order they run.

    Raises:
      ValueError: an unknown stage, listing the known ones.
    """
    if stage == "tune":
        return fashion_rows(stage, lambda a: TUNE_SEEDS, lrs=TUNE_LRS,
                             validation=VALIDATION_IMAGES)  # fmt: skip
    if stage == "final":
        return fashion_rows(stage, final_seeds)
    if stage == "ablation":
        return [
            Row(
                stage,
                f"{a}_k{k}_{s}",
                "fashion_mnist",
                a,
                ABLATION_SEEDS,
                lrs=(PAPER_LR,),
                k=k,
                sharing=s,
            )  # fmt: skip
            for a in ("cpaf_sigmoid", "cpaf_relu")
            for k in (1, 2, 3, 4)
            for s in ("element", "channel", "shared")
        ]
    if stage == "features":
        return [
            Row(
                stage,
                a,
                "mnist_features",
                a,
                FEATURES_SEEDS,
                lrs=(PAPER_LR,),
                dataset="fashion_mnist",
            )  # fmt: skip
            for a in FEATURES_ACTIVATIONS
        ]
    raise ValueError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
