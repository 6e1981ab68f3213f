"""Exceptions with a meaning for the user.

`UsageError` is bad input (unknown name, wrong value, missing file): the CLI prints its message
as one line and exits with code 2. Everything else is a failure (exit code 1).
"""


class FactorkitError(Exception):
    """Base class of factorkit's own errors."""


class UsageError(FactorkitError, ValueError):
    """The user asked for something that cannot work; the message says what and how to fix it."""


class UnsupportedOperation(UsageError):
    """A model was asked for an edit operation it does not support."""


class NonFiniteLoss(FactorkitError):
    """A loss became NaN or infinite during training."""


class CheckpointError(FactorkitError):
    """A checkpoint is missing, truncated or does not match its recorded hash."""
