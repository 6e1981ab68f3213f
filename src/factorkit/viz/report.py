"""``factorkit report DIR`` → ``DIR/report.html``: one self-contained page (images inline as
data URIs, CSS inline, no network) with the config, loss curves, metric tables with their
floor / majority-class level, and the grids the model supports: reconstructions, traversals,
swaps, edits across intensities and — on faces — edits next to the true counterfactuals."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..data.registry import load as load_data
from ..files import atomic_write_text
from ..train.rundir import load_model, read_log, read_metrics
from . import grids

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:22px 40px}
header h1{margin:0;font-size:24px;font-weight:600} header p{margin:4px 0 0;color:#b9c0cf;font-size:14px}
main{max-width:1100px;margin:0 auto;padding:10px 40px 60px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);margin:22px 0;padding:18px 24px}
h2{font-size:18px;margin:0 0 10px;border-bottom:1px solid #e5e8ee;padding-bottom:8px}
h3{font-size:15px;margin:16px 0 6px;color:#3a4256}
p.note{color:#5b647a;font-size:13px;margin:4px 0 10px}
table{border-collapse:collapse;font-size:13px;margin:6px 0 12px}
th,td{padding:4px 12px;text-align:right;border-bottom:1px solid #eef0f4} th{background:#f1f3f7;font-weight:600}
td:first-child,th:first-child{text-align:left}
td.good{color:#1a7f37;font-weight:600} td.bad{color:#b42318}
img{image-rendering:pixelated;max-width:100%;border:1px solid #e5e8ee;border-radius:4px}
pre{background:#f1f3f7;padding:10px;border-radius:6px;font-size:12px;overflow:auto;max-height:320px}
.kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:10px}
.kv div{background:#f1f3f7;border-radius:6px;padding:8px 12px} .kv b{display:block;font-size:20px}
.kv span{font-size:12px;color:#5b647a}
"""


def _img(image: torch.Tensor, scale: int = 2, alt: str = "") -> str:
    data = base64.b64encode(grids.png_bytes(image, scale)).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _figure(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def loss_curves(log: list[dict]) -> str | None:
    records = [r for r in log if isinstance(r.get("losses"), dict)]
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(records[-1]["losses"])
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False)
    steps = [r["step"] for r in records]
    for ax, name in zip(axes.flat, names):
        ys = [r["losses"].get(name, np.nan) for r in records]
        ax.plot(steps, ys, color="#3358d4", lw=1.4)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    return _figure(fig)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.1f}"
    return html.escape(str(v))


def metric_tables(record: dict) -> str:
    m = record.get("metrics", {})
    ref = record.get("reference", {})
    fl = record.get("floors", {})
    out = []
    factor_keys = [k for k in ("mig", "sap", "dci.disentanglement", "dci.completeness", "dci.informativeness_train",
                               "dci.informativeness_test", "modularity", "explicitness_train", "explicitness_test",
                               "higgins", "higgins.chance", "factorvae", "factorvae.chance") if k in m]
    if factor_keys:
        rows = "".join(f"<tr><td>{k}</td><td>{_fmt(m[k])}</td><td>{_fmt(fl.get(k, ''))}</td></tr>"
                       for k in factor_keys)
        out.append("<h3>Ground-truth factors</h3><p class='note'>Floor = the same metric on seeded Gaussian codes of "
                   "this run's code shape, measured on the same rows (modularity and explicitness are far from 0 there).</p>"
                   f"<table><tr><th>metric</th><th>score</th><th>floor</th></tr>{rows}</table>")
    img_keys = [k for k in ("mse", "rmse", "psnr", "ssim", "ms-ssim") if k in m]
    if img_keys:
        rows = "".join(f"<tr><td>{k}</td><td>{_fmt(m[k])} ± {_fmt(m.get(k + '.std', 0.0))}</td></tr>" for k in img_keys)
        out.append(f"<h3>Reconstruction (test images, mean ± std)</h3><table><tr><th>metric</th><th>value</th></tr>{rows}</table>")
    for name in ("attr-projection", "attr-linear"):
        attrs = sorted({k.split(".")[1] for k in m if k.startswith(name + ".") and k.count(".") == 1
                        and not k.endswith((".mean", ".majority_mean"))})
        if attrs:
            rows = ""
            for a in attrs:
                acc, maj = m[f"{name}.{a}"], m.get(f"{name}.{a}.majority", float("nan"))
                cls = "good" if acc > maj + 0.01 else "bad"
                rows += (f"<tr><td>{a}</td><td class='{cls}'>{_fmt(acc)}</td><td>{_fmt(maj)}</td>"
                         f"<td>{_fmt(fl.get(f'{name}.{a}', ''))}</td></tr>")
            rows += (f"<tr><th>mean</th><th>{_fmt(m[name + '.mean'])}</th><th>{_fmt(m[name + '.majority_mean'])}</th>"
                     f"<th>{_fmt(fl.get(name + '.mean', ''))}</th></tr>")
            out.append(f"<h3>{name} (linear read-out of attributes)</h3>"
                       f"<table><tr><th>attribute</th><th>accuracy</th><th>majority class</th><th>random codes</th></tr>{rows}</table>")
    if "nn-map.mean" in m:
        names = sorted({k.split(".")[1] for k in m if k.startswith("nn-map.") and k != "nn-map.mean"})
        chunks = record.get("details", {})
        rows = "".join(f"<tr><td>{a}</td><td>{_fmt(m['nn-map.' + a])}</td><td>{_fmt(fl.get('nn-map.' + a, ''))}</td>"
                       f"<td>{_fmt(chunks.get('nn-map.' + a + '.chunk', ''))}</td></tr>" for a in names)
        out.append(f"<h3>nn-map (nearest-neighbour mAP, best chunk)</h3><p class='note'>Random features ≈ "
                   f"{_fmt(ref.get('nn-map.random', float('nan')))} on average.</p><table><tr><th>factor / attribute</th>"
                   f"<th>mAP</th><th>random codes</th><th>best chunk</th></tr>{rows}<tr><th>mean</th><th>{_fmt(m['nn-map.mean'])}</th>"
                   f"<th>{_fmt(fl.get('nn-map.mean', ''))}</th><th></th></tr></table>")
    es = sorted({k.split(".")[1] for k in m if k.startswith("edit-success.")})
    if es:
        d = record.get("details", {})
        rows = ""
        for a in es:
            ci1, ci0 = d.get(f"edit-success.{a}.attr.ci95", ["", ""]), d.get(f"edit-success.{a}.not_attr.ci95", ["", ""])
            rows += (f"<tr><td>{a}</td><td>{_fmt(m[f'edit-success.{a}.attr'])} [{_fmt(ci1[0])}, {_fmt(ci1[1])}]</td>"
                     f"<td>{_fmt(m.get(f'edit-success.{a}.not_attr', '—'))} [{_fmt(ci0[0])}, {_fmt(ci0[1])}]</td>"
                     f"<td>{int(m[f'edit-success.{a}.n'])}</td><td>{_fmt(m.get(f'edit-success.{a}.classifier_accuracy', ''))}</td>"
                     f"<td>{_fmt(fl.get(f'edit-success.{a}.attr', ''))}</td>"
                     f"<td>{_fmt(m.get(f'edit-success.{a}.add', '—'))}</td><td>{_fmt(m.get(f'edit-success.{a}.remove', '—'))}</td></tr>")
        out.append("<h3>edit-success (independent classifier, 95 % Wilson intervals)</h3>"
                   "<table><tr><th>attribute</th><th>Ĉ attr (set 1)</th><th>Ĉ not-attr (set 0)</th><th>N</th>"
                   f"<th>classifier acc.</th><th>majority class</th><th>0→1</th><th>1→0</th></tr>{rows}</table>")
    ir = sorted({k.split(".")[1] for k in m if k.startswith("identity-retention.") and k.endswith(".edit") and k.count(".") == 2})
    if ir:
        rows = "".join(f"<tr><td>{a}</td><td class='{'good' if m[f'identity-retention.{a}.edit'] >= 0.95 else 'bad'}'>"
                       f"{_fmt(m[f'identity-retention.{a}.edit'])}</td><td>{_fmt(m[f'identity-retention.{a}.reconstruction'])}</td>"
                       f"<td>{_fmt(fl.get(f'identity-retention.{a}.edit', ''))}</td><td>{int(m[f'identity-retention.{a}.n'])}</td>"
                       f"<td>{_fmt(m.get(f'identity-retention.{a}.truth', '—'))}</td>"
                       f"<td>{_fmt(m.get(f'identity-retention.{a}.edit_vs_truth', '—'))}</td></tr>"
                       for a in ir)
        acc = record.get("details", {}).get("classifier", {}).get("factor_accuracy", {})
        note = ", ".join(f"{k} {v:.3f}" for k, v in acc.items())
        out.append("<h3>identity-retention (the judge reads every other factor of the edit unchanged)</h3>"
                   f"<p class='note'>Judge's held-out accuracy per factor: {html.escape(note) or 'n/a'}. "
                   "Chance = how often unrelated test faces agree on those factors. With true counterfactual "
                   "renders: what the true render of the flip keeps (a perfect editor's score; an attribute can "
                   "hide a factor from the judge), and the edit read against that render (1 for a perfect editor).</p>"
                   "<table><tr><th>edited attribute</th><th>edit</th><th>reconstruction</th><th>chance</th><th>N</th>"
                   "<th>true render</th><th>edit vs true render</th></tr>"
                   f"{rows}</table>")
    cf = sorted({k.split(".")[1] for k in m if k.startswith("counterfactual.") and k.count(".") >= 2})
    if cf:
        rows = ""
        for a in cf:
            g = m[f"counterfactual.{a}.gain"]
            rows += (f"<tr><td>{a}</td><td>{_fmt(m[f'counterfactual.{a}.mse_edit'])}</td>"
                     f"<td>{_fmt(m[f'counterfactual.{a}.mse_reconstruction'])}</td><td class='{'good' if g > 0 else 'bad'}'>{_fmt(g)}</td>"
                     f"<td>{_fmt(m[f'counterfactual.{a}.closer_fraction'])}</td><td>{_fmt(m[f'counterfactual.{a}.ssim_edit'])}</td>"
                     f"<td>{_fmt(m[f'counterfactual.{a}.ssim_reconstruction'])}</td></tr>")
        out.append("<h3>counterfactual (edit vs the true counterfactual render)</h3><p class='note'>gain = MSE(reconstruction, "
                   "counterfactual) − MSE(edit, counterfactual): positive when the edit moved the image toward the truth; "
                   "closer = fraction of images where it did.</p><table><tr><th>attribute</th><th>MSE edit</th>"
                   f"<th>MSE recon.</th><th>gain</th><th>closer</th><th>SSIM edit</th><th>SSIM recon.</th></tr>{rows}</table>")
    ps = sorted({k.split(".")[1] for k in m if k.startswith("pair-swap.") and k.endswith(".add.closer")})
    if ps:
        rows = ""
        for a in ps:
            cells = f"<td>{a}</td>"
            for d in ("add", "remove"):
                g = lambda key, a=a, d=d: m.get(f"pair-swap.{a}.{d}.{key}", float("nan"))  # noqa: E731
                cells += (f"<td class='{'good' if g('success') >= 0.9 else 'bad'}'>{_fmt(g('success'))}</td>"
                          f"<td class='{'good' if g('closer') >= 0.9 else 'bad'}'>{_fmt(g('closer'))}</td>"
                          f"<td>{_fmt(g('closer_input'))}</td>"
                          f"<td>{_fmt(g('psnr'))} ({_fmt(g('psnr_reconstruction'))}; {_fmt(g('psnr_input'))})</td>"
                          f"<td class='{'good' if g('identity') >= 0.95 else 'bad'}'>{_fmt(g('identity'))} "
                          f"({_fmt(g('identity_reconstruction'))})</td>")
            rows += f"<tr>{cells}<td>{int(m.get(f'pair-swap.{a}.n', 0))}</td></tr>"
        head = "".join(f"<th>{d}: success</th><th>closer</th><th>closer than input</th><th>PSNR (recon.; input)</th>"
                       "<th>identity (recon.)</th>"
                       for d in ("B2 add", "A2 remove"))
        out.append("<h3>pair-swap (crossbreeds vs the true counterfactuals, read by the judge)</h3><p class='note'>"
                   "B2 = B given A's attribute piece, scored against B's counterfactual with the attribute; A2 = A with "
                   "its piece annihilated, against A's without it. closer = nearer the counterfactual than the plain "
                   "reconstruction; closer than input = nearer than the unedited input (the null of a residual child, "
                   "model.edit_output=residual, which starts from the input). Bars: success and closer ≥ 0.90, identity ≥ 0.95.</p>"
                   f"<table><tr><th>attribute</th>{head}<th>pairs</th></tr>{rows}</table>")
    return "".join(out)


def intensity_plot(record: dict) -> str | None:
    d = record.get("details", {})
    curves = {k.split(".")[1]: k for k in d if k.startswith("edit-intensity.") and k.endswith(".values")}
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for a, key in curves.items():
        ax.plot(d[key], d[f"edit-intensity.{a}.error"], marker="o", label=a)
    ax.set_xlabel("edited intensity ŷ")
    ax.set_ylabel("SVM error (still 'without')")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _figure(fig)


def _section(title: str, body: str, note: str = "") -> str:
    return f"<section><h2>{html.escape(title)}</h2>{f'<p class=note>{note}</p>' if note else ''}{body}</section>"


@torch.no_grad()
def build_report(run_dir: str | Path, max_traversals: int = 12) -> Path:

    run_dir = Path(run_dir)
    model = load_model(run_dir)
    cfg = model.run_config
    info = model.info
    parts: list[str] = []
    record = read_metrics(run_dir)
    log = read_log(run_dir)
    try:
        test = load_data(cfg.data_name, "test", root=cfg.data_root, options=cfg.data)
    except Exception as exc:  # the data may be gone; the page still shows config, curves, metrics
        test = None
        parts.append(_section("Data", f"<p class=note>Test data unavailable ({html.escape(str(exc))}); grids skipped.</p>"))

    m = record.get("metrics", {})
    highlights = []
    for key, label in (("psnr", "PSNR (dB)"), ("counterfactual.gain", "counterfactual gain"),
                       ("attr-projection.mean", "attribute read-out"), ("mig", "MIG"), ("dci.disentanglement", "DCI disent."),
                       ("nn-map.mean", "nn-map")):
        if key in m:
            highlights.append(f"<div><b>{_fmt(m[key])}</b><span>{label}</span></div>")
    summary = (f"<p>{html.escape(model.paper)}. Supervision: {html.escape(model.supervision)}. Representation: "
               f"{html.escape(model.layout)}. Operations: {', '.join(sorted(model.operations))}.</p>")
    if highlights:
        summary += f"<div class=kv>{''.join(highlights)}</div>"
    parts.insert(0, _section("Summary", summary))
    parts.append(_section("Configuration", f"<pre>{html.escape(yaml.safe_dump(cfg.to_dict(), sort_keys=False))}</pre>"))
    curves = loss_curves(log)
    if curves:
        parts.append(_section("Training curves", curves, "Means over each logging interval, from log.jsonl."))
    if record:
        tables = metric_tables(record)
        plot = intensity_plot(record)
        body = tables + (f"<h3>edit-intensity</h3>{plot}" if plot else "")
        if not body:
            body = "<p class=note>metrics.json holds no scores yet.</p>"
        note = f"Held-out split, step {record.get('step')}. Run <code>factorkit evaluate</code> to add more."
        parts.append(_section("Metrics", body, note))
    else:
        parts.append(_section("Metrics", "<p class=note>No metrics.json yet: run <code>factorkit evaluate DIR</code>.</p>"))

    if test is not None:
        rng = np.random.default_rng(0)
        idx = np.sort(rng.choice(len(test), min(8, len(test)), replace=False))
        x = test.images_at(idx).to(model.device)
        if model.supports("reconstruct"):
            parts.append(_section("Reconstructions", _img(grids.reconstruction_grid(model, x)),
                                  "Top: test images; bottom: reconstructions."))
        if model.supports("edit") and info.attributes and info.attribute_kind == "binary":
            names = model.edit_attributes()
            parts.append(_section("Attribute flips", _img(grids.flip_grid(model, x[:6], names), 2, "flips"),
                                  "Rows: test images. Columns: input, reconstruction, then for each attribute ("
                                  + ", ".join(html.escape(a) for a in names) + ") the edit to 0 and to 1."))
            values = [-0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
            body = ""
            for a in names:
                body += f"<h3>{html.escape(a)}</h3>" + _img(grids.edit_grid(model, x[:4], a, values), 2, a)
            parts.append(_section("Edits across intensities", body,
                                  "Columns: input, reconstruction, then the attribute set to " + ", ".join(map(str, values)) + "."))
            if info.has_counterfactual:
                body = "".join(f"<h3>{html.escape(a)}</h3>" + _img(grids.counterfactual_grid(model, test, idx[:4], a), 2, a)
                               for a in names)
                parts.append(_section("Edits vs true counterfactuals", body,
                                      "Columns: input, reconstruction, the model's edit (attribute flipped), the true "
                                      "counterfactual render, |edit − counterfactual| × 3."))
        crossbreed = getattr(model, "crossbreed", None)
        if callable(crossbreed) and info.has_counterfactual:
            attrs = test.attribute_array()
            body = ""
            for a in model.edit_attributes():
                k = info.attribute_index(a)
                on, off = np.flatnonzero(attrs[:, k] > 0.5), np.flatnonzero(attrs[:, k] < 0.5)
                if len(on) and len(off):
                    pairs = min(4, len(on), len(off))
                    body += f"<h3>{html.escape(a)}</h3>" + _img(grids.crossbreed_grid(model, test, on[:pairs], off[:pairs], a), 2, a)
            names = model.edit_attributes()
            if callable(getattr(model, "interpolate", None)) and len(names) >= 2:
                i, j = names[:2]
                ki, kj = info.attribute_index(i), info.attribute_index(j)
                base = np.flatnonzero((attrs[:, ki] < 0.5) & (attrs[:, kj] < 0.5))
                ref_i = np.flatnonzero((attrs[:, ki] > 0.5) & (attrs[:, kj] < 0.5))
                ref_j = np.flatnonzero((attrs[:, kj] > 0.5) & (attrs[:, ki] < 0.5))
                if len(base) and len(ref_i) and len(ref_j):
                    g = grids.interpolation_grid(model, test.images_at(base[:1]).to(model.device),
                                                 test.images_at(ref_i[:1]).to(model.device),
                                                 test.images_at(ref_j[:1]).to(model.device), i, j)
                    body += (f"<h3>{html.escape(i)} × {html.escape(j)}</h3><p class=note>Row 0: a face with neither, "
                             f"one with {html.escape(i)} only, one with {html.escape(j)} only. Below: the first face with "
                             f"its {html.escape(i)} piece blended toward the second's (rows, λ 0 → 1) and its "
                             f"{html.escape(j)} piece toward the third's (columns).</p>" + _img(g, 2, f"{i} x {j}"))
            parts.append(_section("Crossbreeds vs true counterfactuals", body,
                                  "Per row a test pair: A (has the attribute), A2 (its piece annihilated), A's true "
                                  "counterfactual without it, B (has it not), B2 (given A's piece), B's true "
                                  "counterfactual with it. Scores: pair-swap in the metrics table. Last, the two-attribute "
                                  "interpolation of the paper's Fig. 4."))
        if model.supports("swap"):
            body = ""
            for c in model.chunk_names():
                body += f"<h3>chunk {html.escape(str(c))}</h3>" + _img(grids.swap_grid(model, x[:4], x[4:8], [c]), 2)
            parts.append(_section("Swaps", body, "Cell (i, j): the chunk from row image i, everything else from column image j."))
        if model.supports("sample"):
            g = torch.Generator().manual_seed(0)
            body = _img(grids.grid(model.sample(16, g).cpu().view(2, 8, *x.shape[1:])), 2, "samples")
            dims = min(max_traversals, model.sample_code(1, g).dim)
            for d in range(dims):
                lo, hi = model.traversal_range(d)
                body += f"<h3>dimension {d}{html.escape(model.dimension_label(d))}</h3>" + _img(
                    grids.grid(model.traverse_samples(3, d, np.linspace(lo, hi, 7).tolist(), g).cpu()), 2)
            parts.append(_section("Samples and their traversals", body,
                                  f"Top: 16 draws from the prior. Then, per code dimension (first {dims}), three draws "
                                  "with that dimension swept over its range, the others fixed (no encoder involved)."))
        if model.supports("traverse"):
            sample = test.images_at(np.sort(rng.choice(len(test), min(256, len(test)), replace=False))).to(model.device)
            codes = model.encode(sample).tensor
            dims = min(max_traversals, codes.shape[1])
            body = ""
            for d in range(dims):
                lo, hi = model.traversal_range(d, codes)
                body += f"<h3>dimension {d}{html.escape(model.dimension_label(d))}</h3>" + _img(
                    grids.traversal_grid(model, x[:3], d, np.linspace(lo, hi, 7).tolist()), 2)
            parts.append(_section("Traversals", body, f"One code dimension at a time (first {dims}), others fixed."))

    title = f"{cfg.model_name} on {cfg.data_name}"
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>factorkit · {html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><header><h1>{html.escape(title)}</h1><p>factorkit report · "
            f"{html.escape(str(run_dir))} · step {record.get('step', cfg.train.steps)} · {stamp}</p></header>"
            f"<main>{''.join(parts)}</main></body></html>")
    out = run_dir / "report.html"
    atomic_write_text(out, page)
    return out
