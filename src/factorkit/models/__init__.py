"""Models: the five methods, their ablations and the baselines the papers compare with."""

from .base import Code, Model
from .registry import build, model_class, names, register

__all__ = ["Code", "Model", "build", "model_class", "names", "register"]
