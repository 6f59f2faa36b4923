"""The public surface: ``cpaf_jax.__all__`` lists one name per thing (no alias, no duplicate, no
name shared with another public thing), and every name of an earlier release still resolves,
with a ``DeprecationWarning`` naming its replacement."""

from __future__ import annotations

import importlib
import types
import warnings

import pytest

import cpaf_jax
import cpaf_jax.training

# Every module that keeps old names, with its table of them.
OLD_NAME_MODULES = [
    "cpaf_jax",
    "cpaf_jax.training",
    "cpaf_jax.activations.extra",
    "cpaf_jax.activations.modules",
]
OLD_NAMES = [
    (modname, old)
    for modname in OLD_NAME_MODULES
    for old in importlib.import_module(modname)._DEPRECATED
]


def test_all_lists_each_public_thing_once():
    names = cpaf_jax.__all__
    assert len(names) == len(set(names)), "a name appears twice in __all__"
    objects = {}
    for name in names:
        obj = getattr(cpaf_jax, name)
        # Two names for one object is an alias; plain data (TABLE1, BASES...) is compared by
        # identity too, so a copy under a second name would also be caught.
        assert id(obj) not in objects, f"{name} and {objects[id(obj)]} are one object"
        objects[id(obj)] = name
    assert not set(names) & set(cpaf_jax._DEPRECATED), "an old name is still in __all__"


def test_no_two_public_things_share_a_name():
    # A top-level name that is also a public name of cpaf_jax.training is the same object
    # (cpaf_jax.train is cpaf_jax.training.train), never another thing.
    training = {
        n: v
        for n, v in vars(cpaf_jax.training).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    for name in set(cpaf_jax.__all__) & set(training):
        assert getattr(cpaf_jax, name) is training[name], name
    for old in ("fit", "FitResult"):
        assert old not in cpaf_jax.__all__


def test_training_and_jit_are_at_the_top_level():
    from cpaf_jax.compile_options import jit
    from cpaf_jax.training.engine import TrainConfig, train
    from cpaf_jax.training.members import Member

    assert cpaf_jax.train is train and cpaf_jax.Member is Member
    assert cpaf_jax.TrainConfig is TrainConfig and cpaf_jax.jit is jit
    assert {"train", "Member", "TrainConfig", "jit"} <= set(cpaf_jax.__all__)


@pytest.mark.parametrize("modname,old", OLD_NAMES, ids=[f"{m}.{o}" for m, o in OLD_NAMES])
def test_every_old_name_works_and_warns(modname, old):
    module = importlib.import_module(modname)
    target_module, attr, instead = module._DEPRECATED[old]
    with pytest.warns(DeprecationWarning, match=rf"{modname}\.{old} is deprecated") as caught:
        obj = getattr(module, old)
    assert any(instead in str(w.message) for w in caught)
    target = importlib.import_module(target_module)
    want = getattr(target, attr, None) or importlib.import_module(f"{target_module}.{attr}")
    assert obj is want
    # Old names stay out of the listed surface.
    assert old not in getattr(module, "__all__", ())


@pytest.mark.parametrize("modname", OLD_NAME_MODULES)
def test_an_unknown_name_is_still_an_attribute_error(modname):
    module = importlib.import_module(modname)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="no_such_name"):
            module.no_such_name  # noqa: B018


def test_from_import_of_an_old_name_warns():
    with pytest.warns(DeprecationWarning, match="cpaf_jax.training.Member"):
        from cpaf_jax.training import SweepMember
    assert SweepMember is cpaf_jax.Member


def test_importing_cpaf_jax_warns_nothing():
    import subprocess
    import sys

    code = "import warnings; warnings.simplefilter('error'); import cpaf_jax, cpaf_jax.linen"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
