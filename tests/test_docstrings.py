"""Every public module, class and function of ``cpaf_jax`` and ``train`` has a docstring, and
every public function that takes or returns arrays says what shapes they have.

"Public" means: a module whose name has no leading underscore, and a function or class defined
in that module (not imported into it) whose name has no leading underscore; for classes, also
their public methods defined in the class body. The API reference (``docs/``) is generated from
exactly these docstrings, so a missing one is a hole in the docs.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import cpaf_jax
import train

# A shape in the docstring: "[N, H, W, C]", "[..., k]", "``(k,)``", "shape", "same shape".
_SHAPE = re.compile(r"\[[^\]]*\]|\(\w*,\s*\)|\bshapes?\b|\bscalars?\b", re.I)


def _modules():
    for pkg in (cpaf_jax, train):
        yield pkg.__name__
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                yield info.name


MODULES = sorted(set(_modules()))


def _public_objects(module):
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) != module.__name__:
            continue  # imported from elsewhere: checked where it is defined
        yield f"{module.__name__}.{name}", obj
        if inspect.isclass(obj):
            for mname, meth in vars(obj).items():
                if mname.startswith("_") or not inspect.isfunction(meth):
                    continue
                yield f"{module.__name__}.{name}.{mname}", meth


def _takes_arrays(fn) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    notes = [p.annotation for p in sig.parameters.values()] + [sig.return_annotation]
    return any("Array" in str(a) for a in notes if a is not inspect.Parameter.empty)


def test_every_module_is_found():
    for expected in (
        "cpaf_jax.ops.functional",
        "cpaf_jax.training.engine",
        "cpaf_jax.data.idx",
        "cpaf_jax.experiments.cli",
    ):
        assert expected in MODULES


@pytest.mark.parametrize("modname", MODULES)
def test_public_names_have_docstrings(modname):
    module = importlib.import_module(modname)
    assert (module.__doc__ or "").strip(), f"module {modname} has no docstring"
    missing, no_shapes = [], []
    for qualname, obj in _public_objects(module):
        doc = inspect.getdoc(obj) or ""
        if inspect.isfunction(obj) and obj.__name__ != obj.__qualname__.split(".")[-1]:
            continue
        if not doc.strip():
            # A method documented by the class or base it overrides counts (getdoc inherits).
            missing.append(qualname)
        elif inspect.isfunction(obj) and _takes_arrays(obj) and not _SHAPE.search(doc):
            no_shapes.append(qualname)
    assert not missing, f"public names without a docstring: {missing}"
    assert not no_shapes, f"functions on arrays whose docstring gives no shapes: {no_shapes}"


def test_the_check_catches_a_missing_docstring():
    import types

    mod = types.ModuleType("fake_mod", "A module.")

    def public(x):
        return x

    public.__module__ = "fake_mod"
    mod.public = public
    found = dict(_public_objects(mod))
    assert "fake_mod.public" in found and not (inspect.getdoc(found["fake_mod.public"]) or "")
