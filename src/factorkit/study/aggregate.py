"""A study's results: ``results.csv`` (one row per run × metric), ``results.json`` and
``summary.md`` (mean ± std and n over seeds per entry and metric, a rank per metric, every claim
with its verdict; then, for the headline metrics, how much of their variance over all runs the
entries explain against the seeds — Locatello et al.'s question — and their rank correlations).

Ranks: 1 is best. Lower is better for errors (keys whose last part is ``mse``, ``rmse``,
``mse_edit`` …, containing ``total_correlation`` or ``wasserstein``, or ending ``fallbacks``);
higher for every other score.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write_text
from .claims import parse_claim, verdict
from .runner import read_state
from .spec import Study


def lower_is_better(metric: str) -> bool:
    last = metric.rsplit(".", 1)[-1]
    return last.split("_")[0] in ("mse", "rmse") or "total_correlation" in metric or "wasserstein" in metric \
        or metric.endswith("fallbacks")


_DETAIL = ("std", "n", "chance", "num_active_dims", "train_accuracy", "majority", "majority_mean", "add", "remove")


def headline(metric: str) -> bool:
    """A score worth comparing across runs: at most one dot, not a detail (a std, a count, a chance level)."""
    return metric.count(".") <= 1 and metric.rsplit(".", 1)[-1] not in _DETAIL


def spread(values_by_entry: dict[str, list[float]]) -> dict[str, float] | None:
    """One-way decomposition of a metric's values over runs: η² = SS_between / SS_total (the share of
    the variance the entry explains; 1 − η² is the seeds'), the std of the entry means, and the
    pooled within-entry (seed) std. None without two entries and a repeated seed."""
    groups = [np.array([v for v in vals if math.isfinite(v)]) for vals in values_by_entry.values()]
    groups = [g for g in groups if len(g)]
    if len(groups) < 2 or not any(len(g) > 1 for g in groups):
        return None
    values = np.concatenate(groups)
    grand = values.mean()
    ss_between = float(sum(len(g) * (g.mean() - grand) ** 2 for g in groups))
    ss_within = float(sum(((g - g.mean()) ** 2).sum() for g in groups))
    dof = sum(len(g) - 1 for g in groups)
    total = ss_between + ss_within
    return {"eta2": ss_between / total if total > 0 else float("nan"),
            "between_std": float(np.std([g.mean() for g in groups], ddof=1)),
            "within_std": math.sqrt(ss_within / dof) if dof else 0.0, "entries": len(groups), "runs": len(values)}


def collect(study: Study, out: Path) -> dict[str, Any]:
    """Every run's state and scores, read back from its run directory."""
    rows, runs = [], []
    set_keys = sorted({k for e in study.entries for k in e.sets})
    for run in study.runs:
        run_dir = out / "runs" / run.name
        state = read_state(run_dir)
        entry = {"run": run.name, "label": run.entry.label, "method": run.entry.method, "data": run.data,
                 "seed": run.seed, "state": state.get("state", "missing"), "error": state.get("error"),
                 "seconds": state.get("seconds"), "sets": run.entry.sets}
        runs.append(entry)
        if state.get("state") != "done":
            continue
        try:
            record = json.loads((run_dir / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        for metric, value in record.get("metrics", {}).items():
            rows.append({"run": run.name, "label": run.entry.label, "method": run.entry.method, "data": run.data,
                         "seed": run.seed, "metric": metric, "value": value,
                         "floor": record.get("floors", {}).get(metric),
                         "seconds": record.get("seconds", {}).get(metric.split(".")[0]),
                         **{k: run.entry.sets.get(k) for k in set_keys}})
    return {"rows": rows, "runs": runs, "set_keys": set_keys}


def summarise(study: Study, collected: dict) -> dict[str, Any]:
    by: dict[tuple[str, str, str], list[float]] = {}
    per_seed: dict[str, dict[str, dict[int, dict[str, float]]]] = {}
    for r in collected["rows"]:
        by.setdefault((r["data"], r["label"], r["metric"]), []).append(float(r["value"]))
        per_seed.setdefault(r["data"], {}).setdefault(r["label"], {}).setdefault(r["seed"], {})[r["metric"]] = \
            float(r["value"])
    stats = []
    for (data, label, metric), values in sorted(by.items()):
        v = np.array([x for x in values if math.isfinite(x)])
        stats.append({"data": data, "label": label, "metric": metric, "n": len(v),
                      "mean": float(v.mean()) if len(v) else float("nan"),
                      "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0})
    for data in {s["data"] for s in stats}:
        for metric in {s["metric"] for s in stats if s["data"] == data}:
            group = [s for s in stats if s["data"] == data and s["metric"] == metric and s["n"]]
            group.sort(key=lambda s: s["mean"], reverse=not lower_is_better(metric))
            for rank, s in enumerate(group, 1):
                s["rank"] = rank
    spreads, correlations = [], {}
    for data, entries in per_seed.items():
        metrics = sorted({m for seeds in entries.values() for rec in seeds.values() for m in rec if headline(m)})
        for metric in metrics:
            s = spread({lab: [rec[metric] for rec in seeds.values() if metric in rec] for lab, seeds in entries.items()})
            if s is not None:
                spreads.append({"data": data, "metric": metric, **s})
        correlations[data] = _spearman(entries, [s["metric"] for s in spreads if s["data"] == data])
    claims = []
    for text in study.claims:
        claim = parse_claim(text, study.labels())
        for data in study.data:
            claims.append({"data": data, **verdict(claim, per_seed.get(data, {}))})
    return {"stats": stats, "claims": claims, "spread": spreads, "spearman": correlations}


def rank_correlation(matrix: np.ndarray) -> np.ndarray:
    """Spearman's ρ between the columns of ``matrix`` (rows: runs) as a full matrix, also for two
    columns (where scipy returns the one coefficient)."""
    from scipy.stats import spearmanr

    rho = spearmanr(matrix).statistic
    return np.array([[1.0, rho], [rho, 1.0]]) if np.ndim(rho) == 0 else np.asarray(rho)


def _spearman(entries: dict[str, dict[int, dict[str, float]]], metrics: list[str]) -> dict[str, Any]:
    """Spearman's ρ between ``metrics`` over the runs that have all of them (needs three runs)."""
    runs = [rec for seeds in entries.values() for rec in seeds.values() if all(m in rec for m in metrics)]
    if len(metrics) < 2 or len(runs) < 3:
        return {"metrics": metrics, "rho": [], "runs": len(runs)}
    rho = rank_correlation(np.array([[rec[m] for m in metrics] for rec in runs]))
    return {"metrics": metrics, "rho": [[round(float(x), 3) for x in row] for row in rho], "runs": len(runs)}


def write(study: Study, out: Path) -> dict[str, Any]:
    collected = collect(study, out)
    summary = summarise(study, collected)
    cols = ["run", "method", "data", "seed", "metric", "value", "floor", "seconds", *collected["set_keys"]]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(collected["rows"])
    atomic_write_text(out / "results.csv", buf.getvalue())
    result = {"name": study.name, "runs": collected["runs"], **summary}
    atomic_write_text(out / "results.json", json.dumps(result, indent=1, default=str))
    atomic_write_text(out / "summary.md", markdown(study, collected, summary))
    return result


def markdown(study: Study, collected: dict, summary: dict) -> str:
    failed = [r for r in collected["runs"] if r["state"] == "failed"]
    done = sum(r["state"] == "done" for r in collected["runs"])
    lines = [f"# Study {study.name}", "",
             f"{done}/{len(collected['runs'])} runs done, {len(failed)} failed; {len(study.seeds)} seeds "
             f"({', '.join(map(str, study.seeds))}), {study.steps} steps, preset {study.preset}.", ""]
    labels = [e.label for e in study.entries]

    def table(stats: list[dict], metrics: list[str]) -> list[str]:
        out = ["| metric | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
        for m in metrics:
            cells = []
            for lab in labels:
                s = next((x for x in stats if x["label"] == lab and x["metric"] == m), None)
                cells.append("—" if s is None or not s["n"] else
                             f"{s['mean']:.4g} ± {s['std']:.2g} (n={s['n']}, #{s.get('rank', '—')})")
            out.append(f"| {m} | " + " | ".join(cells) + " |")
        return out + [""]

    details = []
    for data in study.data:
        stats = [s for s in summary["stats"] if s["data"] == data]
        metrics = sorted({s["metric"] for s in stats})
        lines += [f"## {data}", ""] + table(stats, [m for m in metrics if headline(m)])
        rest = [m for m in metrics if not headline(m)]
        if rest:
            details += [f"## Every other score ({data})", ""] + table(stats, rest)
    for data in study.data:
        rows = [s for s in summary.get("spread", []) if s["data"] == data]
        if rows:
            lines += [f"## Seeds against entries ({data})", "",
                      "η²: the share of a metric's variance over all runs that the entry explains (one-way, "
                      "SS_between / SS_total); the rest is the seeds'. Beside it the std of the entry means and the "
                      "pooled std over seeds within an entry.", "",
                      "| metric | η² (entries) | std of entry means | std over seeds | entries | runs |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {s['metric']} | {s['eta2']:.2f} | {s['between_std']:.3g} | {s['within_std']:.3g} | "
                      f"{s['entries']} | {s['runs']} |" for s in rows]
            lines.append("")
        corr = summary.get("spearman", {}).get(data, {})
        if corr.get("rho"):
            names = corr["metrics"]
            lines += [f"## Rank correlation between metrics ({data}; Spearman's ρ over {corr['runs']} runs)", "",
                      "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
            lines += [f"| {a} | " + " | ".join(f"{x:+.2f}" for x in row) + " |" for a, row in zip(names, corr["rho"])]
            lines.append("")
    if summary["claims"]:
        lines += ["## Claims", ""]
        for c in summary["claims"]:
            lines.append(f"- `{c['claim']}` on {c['data']}: **{c.get('text', c['verdict'])}**")
        lines.append("")
    if failed:
        lines += ["## Failed runs", ""] + [f"- {r['run']}: {r['error']}" for r in failed] + [""]
    return "\n".join(lines + details)
