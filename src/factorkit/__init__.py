"""factorkit: learn disentangled image representations and edit image attributes with them.

    import factorkit as fk
    ds = fk.data.load("shapes2d", split="train")
    model = fk.models.build("betavae", ds)
    fk.train(model, ds, steps=2000, out="runs/x")
    model = fk.load("runs/x")
"""

from . import data, metrics, models
from .api import load, train
from .errors import FactorkitError, UnsupportedOperation, UsageError
from .metrics.evaluate import evaluate

__version__ = "0.1.0"

__all__ = ["FactorkitError", "UnsupportedOperation", "UsageError", "data", "evaluate", "load", "metrics", "models",
           "train"]
