"""``cpaf-train build-kernel`` (or ``python -m cpaf_jax.ops.build_kernel``): builds the
one-pass CPU kernel into its cache ahead of training, and says where it is or why it failed."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Builds the kernel; returns 0 (built or already cached) or 1 (printed why not)."""
    from cpaf_jax.ops import kernel_cache

    p = argparse.ArgumentParser(
        prog="cpaf-train build-kernel",
        description="Build the one-pass CPU kernel of cpaf's backward into its cache folder "
        "($CPAF_JAX_CACHE, else ~/.cache/cpaf_jax) before training.",
    )
    p.add_argument("--force", action="store_true", help="rebuild even if a verified one exists")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        path = kernel_cache.build(force=args.force)
    except kernel_cache.KernelBuildError as e:
        print(f"error: {e}; training will use the XLA backward", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
