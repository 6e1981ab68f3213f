"""Metrics: ground-truth-factor scores, attribute/retrieval scores, image and editing scores.

Array cores work on plain arrays (numpy or torch), no model needed::

    fk.metrics.mig(codes, factors)
    fk.metrics.dci(codes, factors, codes_test, factors_test)
    fk.metrics.compute("sap", codes, factors, seed=0)
    fk.metrics.score(codes, factors)  # every applicable array metric, each with its measured floor
"""

from .arrays import score
from .attributes import attr_projection, nn_map
from .downstream_task import downstream
from .evaluate import Settings, applicable_metrics, compute
from .factors import dci, factorvae, higgins, mig, modularity, sap
from .information import infoe, infomec, med
from .registry import ALL_METRICS, METRICS
from .robustness import irs
from .unsupervised_scores import unsupervised

attr_linear = attr_projection  # Hu et al. eq. 5 is Kumar et al.'s projection protocol

__all__ = ["ALL_METRICS", "METRICS", "Settings", "applicable_metrics", "attr_linear", "attr_projection", "compute", "dci",
           "downstream", "factorvae", "higgins", "infoe", "infomec", "irs", "med", "mig", "modularity", "nn_map", "sap",
           "score", "unsupervised"]
