"""``Dataset.split_validation``: a fixed, seeded split carved from the training set only."""

from __future__ import annotations

import numpy as np
import pytest

from cpaf_jax.data import DataError, Dataset


def _data(n_train=50, n_test=7) -> Dataset:
    x = np.arange(n_train, dtype=np.float32).reshape(n_train, 1, 1, 1)
    t = -1.0 - np.arange(n_test, dtype=np.float32).reshape(n_test, 1, 1, 1)
    return Dataset("fashion_mnist", x, np.arange(n_train, dtype=np.int32) % 10, t,
                   np.zeros(n_test, np.int32), 10, "test", (0.0,), (1.0,))  # fmt: skip


def test_split_holds_out_training_images_and_never_the_test_set():
    ds = _data()
    v = ds.split_validation(12)
    assert v.eval_split == "validation" and ds.eval_split == "test"
    train_ids = v.train_images.ravel().astype(int)
    held_ids = v.test_images.ravel().astype(int)
    assert len(train_ids) == 38 and len(held_ids) == 12
    # A partition of the training images; the official test images appear nowhere.
    assert sorted(np.concatenate([train_ids, held_ids]).tolist()) == list(range(50))
    assert (v.test_images >= 0).all() and (v.train_images >= 0).all()
    # Labels follow their images; training keeps the original order.
    np.testing.assert_array_equal(v.test_labels, held_ids % 10)
    np.testing.assert_array_equal(v.train_labels, train_ids % 10)
    assert (np.diff(train_ids) > 0).all()
    # The held-out images are the last 12 of the seeded permutation.
    perm = np.random.default_rng(0).permutation(50)
    assert set(held_ids) == set(perm[-12:].tolist())


def test_split_is_fixed_by_its_seed():
    a, b = _data().split_validation(10), _data().split_validation(10)
    np.testing.assert_array_equal(a.test_images, b.test_images)
    c = _data().split_validation(10, seed=1)
    assert not np.array_equal(a.test_images, c.test_images)


@pytest.mark.parametrize("n", [0, 50, 51])
def test_bad_sizes_name_the_range(n):
    with pytest.raises(DataError, match="validation size .* pass a value from 1 to 49"):
        _data().split_validation(n)


def test_a_split_is_not_split_again():
    with pytest.raises(DataError, match="already evaluates on a validation split"):
        _data().split_validation(5).split_validation(5)
