"""Claims of a study and their verdicts, paired by seed.

A claim compares two entries on one metric: ``A.metric OP B.metric [± margin]`` with OP one of
``>``, ``<``, ``>=``, ``<=`` (``mddae.psnr >= mddae-xcov.psnr - 0.5``). Labels may contain dots
and dashes: the left side is split at the longest known label followed by a dot. On each seed that
both entries finished (on each dataset), the claim holds or not; the verdict counts them:

* ``holds (3/3 seeds, Δ = +0.025 ± 0.010)`` — every pair; Δ = mean ± std (ddof 1) of A − B;
* ``does not hold (0/3 seeds, …)`` — no pair;
* ``mixed (2/3 seeds, …)`` — some;
* with n ≥ 5 pairs, the two-sided paired t-test's p-value of A − B against the margin
  (scipy's ``ttest_rel``) is added; ``no data`` where no seed has both.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_SPLIT = re.compile(r"\s*(>=|<=|>|<)\s*")
_MARGIN = re.compile(r"^(?P<ref>.+?)\s*(?P<sign>[+-])\s*(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)$")


@dataclass(frozen=True)
class Claim:
    text: str
    left: str  # entry label
    left_metric: str
    op: str
    right: str
    right_metric: str
    margin: float  # added to the right side

    def holds(self, a: float, b: float) -> bool:
        return OPS[self.op](a, b + self.margin)


_METRIC = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


def _side(text: str, labels: list[str], claim: str) -> tuple[str, str]:
    for label in sorted(labels, key=len, reverse=True):
        if text.startswith(label + ".") and len(text) > len(label) + 1:
            metric = text[len(label) + 1:]
            if not _METRIC.match(metric):
                raise UsageError(f"study claim {claim!r}: {metric!r} is not a metric name (letters, digits, _ . + -)")
            return label, metric
    raise UsageError(f"study claim {claim!r}: {text!r} names no entry; entries are {', '.join(labels)} "
                     "(write LABEL.METRIC)")


def parse_claim(text: str, labels: list[str]) -> Claim:
    parts = _SPLIT.split(text.strip())
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise UsageError(f"study claim {text!r}: expected 'A.metric OP B.metric [+|- margin]' with OP one of "
                         ">, <, >=, <=")
    left, op, right = parts
    margin = 0.0
    m = _MARGIN.match(right)
    if m:
        right, margin = m.group("ref"), float(m.group("num")) * (1 if m.group("sign") == "+" else -1)
    a, am = _side(left, labels, text)
    b, bm = _side(right, labels, text)
    return Claim(text, a, am, op, b, bm, margin)


def verdict(claim: Claim, values: dict[str, dict[int, dict[str, float]]]) -> dict:
    """``values[label][seed][metric]`` → the verdict of ``claim`` paired by seed."""
    a, b = values.get(claim.left, {}), values.get(claim.right, {})
    pairs = [(s, a[s][claim.left_metric], b[s][claim.right_metric]) for s in sorted(set(a) & set(b))
             if claim.left_metric in a[s] and claim.right_metric in b[s]
             and math.isfinite(a[s][claim.left_metric]) and math.isfinite(b[s][claim.right_metric])]
    n = len(pairs)
    if n == 0:
        return {"claim": claim.text, "verdict": "no data", "n": 0, "held": 0}
    diffs = np.array([x - y for _, x, y in pairs])
    held = sum(claim.holds(x, y) for _, x, y in pairs)
    word = "holds" if held == n else "does not hold" if held == 0 else "mixed"
    std = float(diffs.std(ddof=1)) if n > 1 else 0.0
    out = {"claim": claim.text, "verdict": word, "n": n, "held": int(held), "delta_mean": float(diffs.mean()),
           "delta_std": std, "seeds": [int(s) for s, _, _ in pairs]}
    text = f"{word} ({held}/{n} seeds, Δ = {diffs.mean():+.3g} ± {std:.2g}"
    if n >= 5:
        from scipy.stats import ttest_rel

        p = float(ttest_rel([x for _, x, _ in pairs], [y + claim.margin for _, _, y in pairs]).pvalue)
        out["p_value"] = p
        text += f", paired t-test p = {p:.3g}"
    out["text"] = text + ")"
    return out
