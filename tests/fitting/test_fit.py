"""Fit-to-target initialisation: accuracy against NumPy re-evaluations, and modules built from
the fitted values reproduce the fitted curve."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cpaf_jax
import cpaf_jax.activations.pau as pau_family
import cpaf_jax.activations.swish as swish_family
from cpaf_jax import CurveFit, family, fit_curve

GRID = np.linspace(-3.0, 3.0, 512, dtype=np.float32)  # fit_curve's default grid
SIGMOID = family("cpaf_sigmoid")


def np_sigmoid(u):
    return 1.0 / (1.0 + np.exp(-u))


def np_cpaf_sigmoid(y, a, b):
    return np.sum(a * (np_sigmoid(y[:, None] - b) - 0.5), axis=-1)


def np_cpaf_relu(y, a, b):
    return np.sum(a * (np.maximum(y[:, None] - b, 0.0) - 0.5), axis=-1)


def np_pau(x, p, q):
    xs = x[:, None].astype(np.float64)
    num = np.sum(p * xs ** np.arange(len(p)), axis=-1)
    den = 1 + np.sum(np.abs(q) * np.abs(xs) ** np.arange(1, len(q) + 1), axis=-1)
    return num / den


@pytest.fixture(scope="module")
def tanh_fit() -> CurveFit:
    return fit_curve("tanh", family("cpaf_sigmoid"), (-3, 3), k=4)


def test_cpaf_sigmoid_k4_fits_tanh(tanh_fit):
    a, b = tanh_fit.params["a"], tanh_fit.params["b"]
    assert a.shape == b.shape == (4,)
    err = np.abs(np_cpaf_sigmoid(GRID.astype(np.float64), a, b) - np.tanh(GRID))
    assert err.max() < 0.05
    assert tanh_fit.max_error < 0.05
    np.testing.assert_allclose(err.max(), tanh_fit.max_error, atol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.mean(err**2)), tanh_fit.rms_error, atol=1e-4)
    # Between grid points too.
    fine = np.linspace(-3, 3, 4001)
    assert np.abs(np_cpaf_sigmoid(fine, a, b) - np.tanh(fine)).max() < 0.05


def test_cpaf_relu_k2_fits_relu_exactly():
    # relu(y) = 1 * (relu(y - 0) - 1/2) + (-1) * (relu(y - b2) - 1/2) for any b2 >= 3: the
    # second term is the constant +1/2 on [-3, 3]. Exact up to float32 rounding.
    res = fit_curve("relu", family("cpaf_relu"), k=2)
    a, b = res.params["a"], res.params["b"]
    err = np.abs(np_cpaf_relu(GRID.astype(np.float64), a, b) - np.maximum(GRID, 0))
    assert res.max_error < 1e-5 and err.max() < 1e-5
    i = int(np.argmax(np.abs(b)))
    np.testing.assert_allclose(sorted(a), [-1.0, 1.0], atol=1e-5)
    assert a[i] == pytest.approx(-1.0, abs=1e-5) and b[i] >= 3.0 - 1e-5
    assert abs(b[1 - i]) < 1e-4


def test_pau_fits_leaky_relu_and_relu():
    res = fit_curve("leaky_relu", family("pau"))
    p, q = res.params["p"], res.params["q"]
    assert p.shape == (6,) and q.shape == (4,)
    target = np.where(GRID > 0, GRID, 0.01 * GRID)
    err = np.abs(np_pau(GRID, p, q) - target).max()
    # Starts from the published coefficients (error 0.0336 on this interval) and improves.
    assert err < 0.0336 and res.max_error < 0.0336
    np.testing.assert_allclose(err, res.max_error, atol=1e-4)
    res_relu = fit_curve("relu", family("pau"))
    assert res_relu.max_error < 0.05
    assert np.abs(np_pau(GRID, **res_relu.params) - np.maximum(GRID, 0)).max() < 0.05


def test_fitted_initializer_reproduces_the_curve(tanh_fit):
    inits = fit_curve("tanh", family("cpaf_sigmoid"), k=4).init_kwargs()
    assert set(inits) == {"a_init", "b_init"}
    # Deterministic (a cached solver).
    np.testing.assert_array_equal(inits["a_init"], tanh_fit.params["a"])
    act = cpaf_jax.CPAF((7, 3), k=4, base="sigmoid", **inits)
    assert act.a.shape == (7, 3, 4)
    y = jnp.broadcast_to(jnp.asarray(GRID).reshape(-1, 1, 1), (512, 7, 3))
    out = np.asarray(act(y))
    np.testing.assert_allclose(out, np.broadcast_to(tanh_fit(GRID)[:, None, None], out.shape))
    assert np.abs(out - np.tanh(np.asarray(y))).max() < 0.05
    # Also through the registry with init_kwargs.
    act2 = cpaf_jax.activation("cpaf_sigmoid", (3,), k=4, **tanh_fit.init_kwargs())
    np.testing.assert_allclose(act2(y[:, 0]), out[:, 0], rtol=1e-6, atol=1e-7)


def test_fitted_pau_and_swish_modules_reproduce():
    inits = fit_curve("gelu", family("pau")).init_kwargs()
    act = pau_family.PAU((5,), sharing="channel", **inits)
    x = jnp.broadcast_to(jnp.asarray(GRID)[:, None], (512, 5))
    gelu = jax.nn.gelu(x, approximate=False)
    assert float(jnp.abs(act(x) - gelu).max()) < 0.02
    res = fit_curve("gelu", family("swish"))
    assert res.params["beta"].shape == ()
    assert 1.4 < float(res.params["beta"]) < 2.0  # gelu(x) ~ x sigmoid(1.702 x)
    act = swish_family.Swish((5,), **res.init_kwargs())
    assert float(jnp.abs(act(x) - gelu).max()) == pytest.approx(res.max_error, abs=1e-5)


def test_other_families_and_callable_targets():
    res = fit_curve("elu", family("apl"), hinges=3)
    assert res.family.name == "apl" and res.params["a"].shape == (3,) and res.max_error < 0.05
    # NumPy callables work too. |x| needs 3 ReLU-base terms: the left slope -1 from a term
    # parked at b <= -3, the kink at 0, and a constant from a term parked at b >= 3.
    res = fit_curve(lambda x: np.abs(x), family("cpaf_relu"), k=3)
    assert res.family.name == "cpaf_relu" and res.max_error < 1e-4
    res = fit_curve("leaky_relu", family("prelu"))
    assert float(res.params["alpha"]) == pytest.approx(0.01, abs=1e-5)


def test_pau_default_init_for_other_degrees_is_a_fit():
    p, q = pau_family.pau_default_init((3, 2))
    assert p.shape == (4,) and q.shape == (2,)
    target = np.where(GRID > 0, GRID, 0.01 * GRID)
    # The least-squares optimum of a (3, 2) PAU is ~0.112 away from leaky ReLU on [-3, 3].
    assert np.abs(np_pau(GRID, p, q) - target).max() < 0.12
    assert pau_family.PAU(degrees=(3, 2)).p.shape == (4,)


def test_fit_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown target"):
        fit_curve("softsign", SIGMOID)
    with pytest.raises(ValueError, match="unknown activation"):
        fit_curve("tanh", family("maxout"))
    with pytest.raises(ValueError, match="interval"):
        fit_curve("tanh", SIGMOID, (1.0, -1.0))
    with pytest.raises(ValueError, match="k must be"):
        fit_curve("tanh", SIGMOID, k=0)
    with pytest.raises(ValueError, match="elementwise"):
        fit_curve(lambda x: x[:3], SIGMOID)
    with pytest.raises(ValueError, match="not finite"):
        fit_curve(lambda x: jnp.log(x), SIGMOID)
    with pytest.raises(ValueError, match="unknown CPAF base"):
        fit_curve("tanh", cpaf_jax.cpaf_family("softsign"))


def test_fit_curve_takes_the_family_record(tanh_fit):
    # The record of any base, as the registered one: the same deterministic fit; and the learned
    # ELU's alpha.
    res = fit_curve("tanh", cpaf_jax.cpaf_family("sigmoid"), k=4)
    np.testing.assert_array_equal(res.params["a"], tanh_fit.params["a"])
    assert res.options == {"k": 4}
    res = fit_curve(lambda x: jax.nn.elu(x, 0.5), cpaf_jax.family("elu_learned"))
    assert float(res.params["alpha"]) == pytest.approx(0.5, abs=1e-4)
    with pytest.raises(ValueError, match="no parameters to fit"):
        fit_curve("tanh", cpaf_jax.family("relu"))
    with pytest.raises(TypeError, match="unexpected argument"):
        fit_curve("tanh", cpaf_jax.family("pau"), k=3)


@pytest.mark.parametrize("old", ["fit_activation", "fit_initializer"])
def test_the_old_fitting_names_warn_and_give_fit_curves_values(tanh_fit, old):
    with pytest.warns(DeprecationWarning, match=r"cpaf_jax\.fit_curve"):
        fn = getattr(cpaf_jax, old)
    res = fn("tanh", k=4, base="sigmoid")
    a = res.params["a"] if old == "fit_activation" else res[0]
    np.testing.assert_array_equal(a, tanh_fit.params["a"])


def test_fit_samples_weights_points_and_ignores_those_of_weight_zero():
    from cpaf_jax.fitting.curve_fit import fit_samples

    xs = np.linspace(-2.0, 2.0, 101, dtype=np.float32)
    ys = np.where(xs > 0, xs, 5.0).astype(np.float32)  # nonsense left of 0, given no weight
    w = (xs > 0).astype(np.float64)
    res = fit_samples(family("prelu"), xs, ys, w, steps=60, restarts=2)
    assert res.max_error < 1e-3 and res.rms_error < 1e-3  # over the weighted points only
    assert res.interval == (-2.0, 2.0)
    unweighted = fit_samples(family("prelu"), xs, ys, steps=60, restarts=2)
    assert unweighted.rms_error > 0.5  # the same points unweighted cannot be fitted
    with pytest.raises(ValueError, match="weights"):
        fit_samples(family("prelu"), xs, ys, -w)
