"""The default custom VJP is lighter than autodiff (compiled memory is deterministic)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_custom_vjp_needs_less_temporary_memory_than_autodiff():
    from benchmarks.activation_memory import rows

    temp = {(r["activation"], r["implementation"]): r["temp_mib"] for r in rows()}
    for act in ("cpaf_relu", "cpaf_sigmoid"):
        assert temp[(act, "custom_vjp")] < 0.5 * temp[(act, "unrolled")]
        assert temp[(act, "custom_vjp")] < temp[(act, "naive")]
