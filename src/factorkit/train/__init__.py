"""Training: the one trainer, checkpoints and multi-process support."""

from .trainer import Players, RunResult, Trainer

__all__ = ["Players", "RunResult", "Trainer"]
