"""``factorkit study``: a paper's table as one resumable multi-seed study (spec → runs → results)."""

from .spec import Run, Study, load

__all__ = ["Run", "Study", "load"]
