"""A ReLU FashionNet (experiment 4.2's network) trained for one epoch on the real Fashion-MNIST
keeps its test accuracy within 1.0 point when its activations are swapped for CPAF-sigmoid
(k=4, per channel) or PAU, fitted on 512 training images."""

from __future__ import annotations

import numpy as np
import optax
import pytest
from fakes import real_fashion_mnist_subset

import cpaf_jax
from cpaf_jax.models import build_model
from cpaf_jax.training import TrainConfig, evaluate, fit


@pytest.fixture(scope="module")
def trained():
    data = real_fashion_mnist_subset(60_000, 10_000)  # the whole dataset, one epoch
    cfg = TrainConfig(epochs=1, batch_size=128, progress=False, checkpoint=False)
    view = fit(build_model("fashion_mnist", "relu", seed=0), data, optax.adam(1e-3), cfg)
    model = view.model()
    return model, data, view.test_accuracy


@pytest.mark.parametrize(
    ("family", "options"), [("cpaf_sigmoid", {"k": 4, "sharing": "channel"}), ("pau", {})]
)
def test_swap_keeps_the_test_accuracy_within_one_point(trained, family, options):
    model, data, accuracy = trained
    assert accuracy > 0.75  # a trained network, not chance
    calibration = data.train_images[:512]
    res = cpaf_jax.swap_activations(model, family, calibration, **options)
    _, swapped = evaluate(res.model, data.test_images, data.test_labels)
    assert abs(swapped - accuracy) <= 0.01
    assert [f.path for f in res.layers] == ["act1", "act2", "act3", "act4"]
    assert res.layers[0].features_shape == (26, 26, 16)  # measured before the fused pooling
    _, again = evaluate(model, data.test_images, data.test_labels)
    assert again == accuracy  # the trained model is untouched
    logits, new = np.asarray(model(calibration)), np.asarray(res.model(calibration))
    assert np.mean(logits.argmax(1) == new.argmax(1)) > 0.9  # measured: 0.95 (CPAF-sigmoid)
