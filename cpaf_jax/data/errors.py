"""The one exception type that user-facing data problems raise."""

from __future__ import annotations


class DataError(RuntimeError):
    """A dataset is missing, corrupt or malformed.

    The message always says what was expected, what was found and what the user can do
    about it, because these errors usually reach someone running a training script who
    never reads this package's source.
    """
