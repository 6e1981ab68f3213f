"""``factorkit report DIR`` on a study directory → ``DIR/report.html``, one self-contained page:
the claims with their verdicts, the summary table of the headline metrics (mean ± std, n and rank
per entry; ``aggregate.headline``), how much of each metric's variance the entries explain against
the seeds, one strip plot per headline metric with every seed's value per entry (as in Locatello
et al.'s figures), the Spearman rank correlation between the headline metrics per data set (as
results.json holds it), every
other score folded away, and a link to each run's own report."""

from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path

import numpy as np

from ..files import atomic_write_text
from ..viz.report import CSS, _figure, _section
from .aggregate import headline

MAX_PLOTS = 48
PLOT_CSS = (".plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px}"
            ".plots img{image-rendering:auto;width:100%;border:none}")


def is_study_dir(path: Path) -> bool:
    return (path / "results.json").is_file() and (path / "spec.json").is_file()


def _rows(out: Path) -> list[dict]:
    with (out / "results.csv").open() as fh:
        return [r for r in csv.DictReader(fh) if r["value"] not in ("", "nan")]


def _summary_tables(result: dict, labels: list[str], which) -> str:
    parts = []
    for data in sorted({s["data"] for s in result["stats"]}):
        stats = [s for s in result["stats"] if s["data"] == data]
        labels = [lab for lab in labels if any(s["label"] == lab for s in stats)]
        metrics = sorted({s["metric"] for s in stats if which(s["metric"])})
        head = "".join(f"<th>{html.escape(lab)}</th>" for lab in labels)
        body = []
        for m in metrics:
            cells = []
            for lab in labels:
                s = next((x for x in stats if x["label"] == lab and x["metric"] == m), None)
                if s is None or not s["n"]:
                    cells.append("<td>—</td>")
                    continue
                best = " class=good" if s.get("rank") == 1 and len(labels) > 1 else ""
                cells.append(f"<td{best}>{s['mean']:.4g} ± {s['std']:.2g} <small>(n={s['n']}, #{s.get('rank', '—')})"
                             "</small></td>")
            body.append(f"<tr><td>{html.escape(m)}</td>{''.join(cells)}</tr>")
        parts.append(f"<h3>{html.escape(data)}</h3><table><tr><th>metric</th>{head}</tr>{''.join(body)}</table>")
    return "".join(parts)


def _claims(result: dict) -> str:
    if not result.get("claims"):
        return "<p class=note>No claims in the spec.</p>"
    items = []
    for c in result["claims"]:
        cls = "good" if c["verdict"] == "holds" else "bad" if c["verdict"] == "does not hold" else ""
        items.append(f"<tr><td>{html.escape(c['claim'])}</td><td>{html.escape(c['data'])}</td>"
                     f"<td class={cls}>{html.escape(c.get('text', c['verdict']))}</td></tr>")
    return f"<table><tr><th>claim</th><th>data</th><th>verdict (paired by seed)</th></tr>{''.join(items)}</table>"


def _spread(result: dict) -> str:
    rows = result.get("spread") or []
    if not rows:
        return "<p class=note>Needs two entries and a repeated seed.</p>"
    body = "".join(f"<tr><td>{html.escape(s['metric'])} ({html.escape(s['data'])})</td><td>{s['eta2']:.2f}</td>"
                   f"<td>{s['between_std']:.3g}</td><td>{s['within_std']:.3g}</td><td>{s['runs']}</td></tr>" for s in rows)
    return ("<table><tr><th>metric</th><th>η² (entries)</th><th>std of entry means</th><th>std over seeds</th>"
            f"<th>runs</th></tr>{body}</table>")


def _strip_plots(rows: list[dict], labels: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in dict.fromkeys(r["metric"] for r in rows) if headline(m)][:MAX_PLOTS]
    figs = []
    for data in sorted({r["data"] for r in rows}):
        for m in metrics:
            fig, ax = plt.subplots(figsize=(4.0, 2.8))
            found = False
            for i, lab in enumerate(labels):
                vals = [float(r["value"]) for r in rows if r["data"] == data and r["metric"] == m and r["label"] == lab]
                if vals:
                    found = True
                    jitter = np.linspace(-0.12, 0.12, len(vals)) if len(vals) > 1 else [0.0]
                    ax.scatter(np.full(len(vals), i) + jitter, vals, s=16, alpha=0.8)
                    ax.hlines(np.mean(vals), i - 0.25, i + 0.25, color="#1d2330", lw=1)
            if not found:
                plt.close(fig)
                continue
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
            ax.set_title(f"{m} ({data})", fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
            figs.append(f"<div>{_figure(fig)}</div>")
    return f"<div class=plots>{''.join(figs)}</div>"


def _spearman(result: dict) -> str:
    """The rank correlations ``aggregate`` wrote to results.json, one table per data set (a metric's
    scale differs between data sets, so runs are never pooled across them)."""
    parts = []
    for data, corr in sorted((result.get("spearman") or {}).items()):
        title = f"<h3>{html.escape(data)} ({corr.get('runs', 0)} runs)</h3>"
        if not corr.get("rho"):
            parts.append(f"{title}<p class=note>Needs at least two metrics scored on every run and three runs.</p>")
            continue
        names = corr["metrics"]
        head = "".join(f"<th>{html.escape(m)}</th>" for m in names)
        body = []
        for m, row in zip(names, corr["rho"]):
            cells = []
            for v in row:
                v = float("nan") if v is None else float(v)
                colour = "26,127,55" if v > 0 else "180,35,24"
                shade = "" if not math.isfinite(v) else f" style='background:rgba({colour},{abs(v) * 0.45:.2f})'"
                cells.append(f"<td{shade}>{v:+.2f}</td>")
            body.append(f"<tr><td>{html.escape(m)}</td>{''.join(cells)}</tr>")
        parts.append(f"{title}<table><tr><th></th>{head}</tr>{''.join(body)}</table>")
    return "".join(parts) or "<p class=note>No rank correlations in results.json (run the study again to write them).</p>"


def _run_links(result: dict, out: Path) -> str:
    items = []
    for r in result["runs"]:
        run_dir = out / "runs" / r["run"]
        target = f"runs/{html.escape(r['run'])}/report.html" if (run_dir / "report.html").is_file() else None
        name = f"<a href='{target}'>{html.escape(r['run'])}</a>" if target else html.escape(r["run"])
        note = "" if target else " <small>(factorkit report on it writes its page)</small>"
        err = f" — {html.escape(r['error'])}" if r.get("error") else ""
        items.append(f"<tr><td>{name}{note}</td><td>{html.escape(r['label'])}</td><td>{html.escape(r['data'])}</td>"
                     f"<td>{r['seed']}</td><td>{html.escape(str(r['state']))}{err}</td><td>{r.get('seconds') or ''}</td></tr>")
    return ("<table><tr><th>run</th><th>entry</th><th>data</th><th>seed</th><th>state</th><th>seconds</th></tr>"
            f"{''.join(items)}</table>")


def build_study_report(out: str | Path) -> Path:
    out = Path(out)
    result = json.loads((out / "results.json").read_text())
    rows = _rows(out)
    labels = list(dict.fromkeys(r["label"] for r in result["runs"]))
    for r in rows:  # results.csv names runs; the entry label comes from results.json
        r["label"] = next((x["label"] for x in result["runs"] if x["run"] == r["run"]), r["method"])
    done = sum(r["state"] == "done" for r in result["runs"])
    details = _summary_tables(result, labels, lambda m: not headline(m))
    parts = [
        _section("Claims", _claims(result)),
        _section("Summary", _summary_tables(result, labels, headline), "the headline scores: mean ± std over seeds, "
                 "n seeds, #rank per metric (1 = best; lower is better for errors)"),
        _section("Seeds against entries", _spread(result), "η²: the share of a metric's variance over all runs that "
                 "the entry explains (one-way); the rest is the seeds' (Locatello et al.'s question)"),
        _section("Every seed", _strip_plots(rows, labels), "one dot per seed and run; the bar is the mean"),
        _section("Rank correlation between metrics", _spearman(result), "Spearman's ρ over the runs of each data set "
                 "that scored every headline metric (results.json)"),
        *([_section("Every other score", f"<details><summary>per attribute, spreads and counts</summary>{details}"
                    "</details>")] if "<tr><td>" in details else []),
        _section("Runs", _run_links(result, out)),
    ]
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>study {html.escape(result['name'])}</title>"
            f"<style>{CSS}{PLOT_CSS}</style></head><body><header><h1>Study {html.escape(result['name'])}</h1>"
            f"<p>{done}/{len(result['runs'])} runs done</p></header><main>{''.join(parts)}</main></body></html>")
    path = out / "report.html"
    atomic_write_text(path, page)
    return path
