"""Errors that carry a message meant for the user: what is wrong, where, and how to fix it.

`train.py` and the other command-line entry points print these without a traceback.
"""


class SarPromptError(Exception):
    """Base class of every error whose message tells the user how to fix it."""


class ConfigError(SarPromptError, KeyError):
    """A config key, value or file is wrong."""

    def __str__(self):  # KeyError would quote the message
        return self.args[0] if self.args else ""


class DataError(SarPromptError, ValueError):
    """A dataset folder, split file or image is missing or malformed."""


class NovelClassesError(SarPromptError, ValueError):
    """A novel-class file is missing or malformed."""


class WeightsError(SarPromptError, FileNotFoundError):
    """CLIP weights cannot be found or read."""


class CheckpointError(SarPromptError, RuntimeError):
    """A checkpoint is missing, truncated, refused because loading it could run code, or
    lacks (or has another shape for) a tensor the method needs."""


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """No checkpoint file where one was expected."""
