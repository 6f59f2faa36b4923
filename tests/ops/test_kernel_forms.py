"""The family record is the only place a family is described: ``cpaf_jax/ops/*.py`` names no
family (the kernel's C++ source does, as its own enum), and each record's kernel form (base id,
limits) matches the C++ enum and bounds when the kernel is used."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import cpaf_jax
from cpaf_jax.ops import cpu_kernel, kernel_vjp
from cpaf_jax.ops.bases import BASES

OPS = Path(cpaf_jax.__file__).parent / "ops"
NAMES = cpaf_jax.known_activations()
WITH_KERNEL = [n for n in NAMES if cpaf_jax.family(n).kernel is not None]


def _family_words() -> list[str]:
    """Registered names that are not ops' own bases (relu, sigmoid, tanh are functions of
    ``ops/bases.py`` as well as families)."""
    return [name for name in NAMES if name not in BASES]


@pytest.mark.parametrize("path", sorted(OPS.glob("*.py")), ids=lambda p: p.name)
def test_ops_names_no_family(path):
    text = path.read_text()
    found = [w for w in _family_words() if re.search(rf"\b{w}\b", text, flags=re.I)]
    assert not found, f"{path.name} names families {found}: describe them in their records"


def test_the_check_would_see_a_family_name():
    words = _family_words()
    assert {"apl", "pau", "swish", "prelu", "elu"} <= set(words)
    assert re.search(r"\bpau\b", 'BASE_IDS = {"pau": 4}', flags=re.I)


def _enum() -> dict[int, str]:
    source = (OPS / "kernels" / "cpaf_cpu.cc").read_text()
    body = re.search(r"enum BaseId[^{]*\{([^}]*)\}", source).group(1)
    pairs = re.findall(r"k(\w+)\s*=\s*(\d+)", body)
    return {int(v): name.lower() for name, v in pairs}


def test_the_enum_is_what_python_counts():
    enum = _enum()
    assert sorted(enum) == list(range(cpu_kernel.NUM_BASE_IDS))
    assert {enum[i]: i for i in cpu_kernel.BASE_IDS.values()} == cpu_kernel.BASE_IDS


@pytest.mark.parametrize("name", WITH_KERNEL)
def test_each_record_names_its_own_kernel_form(name):
    spec = cpaf_jax.family(name).kernel
    # The C++ enum entry of the record's base id is the family (or CPAF's base).
    assert _enum()[spec.base_id] in (name, name.removeprefix("cpaf_"))
    assert 1 <= spec.max_k <= cpu_kernel.MAX_K and spec.dtype == "float32"
    assert {"apl", "pau", "swish", "cpaf_sigmoid", "cpaf_tanh"} <= set(WITH_KERNEL)


def test_cpaf_relu_backward_is_xla_s():
    # XLA fuses the cotangent's producer into the ReLU base's backward (kernel_form).
    assert cpaf_jax.family("cpaf_relu").kernel is None


@pytest.mark.parametrize("name", WITH_KERNEL)
def test_the_record_bounds_when_the_kernel_applies(name):
    spec = cpaf_jax.family(name).kernel
    y = jax.ShapeDtypeStruct((8, 4), jnp.float32)
    at = lambda k: jax.ShapeDtypeStruct((4, k), jnp.float32)  # noqa: E731
    built = cpu_kernel.available()
    assert kernel_vjp.applies(spec, y, at(spec.max_k), jnp.float32) == built
    assert not kernel_vjp.applies(spec, y, at(spec.max_k + 1), jnp.float32)
    assert not kernel_vjp.applies(spec, y, at(1), jnp.float64)
    assert not kernel_vjp.applies(None, y, at(1), jnp.float32)


def test_swish_takes_one_term_only():
    assert cpaf_jax.family("swish").kernel.max_k == 1
