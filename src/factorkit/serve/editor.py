"""One trained run behind the web editor: its model (loaded once), the controls its operations
declare, the images clients uploaded, and the judge's readings.

Nothing here knows a method by name: the controls come from ``model.operations`` and the model's
own ``edit_attributes`` / ``edit_range`` / ``attribute_values`` / ``chunk_names`` /
``traversal_range`` / ``dimension_label``, so a method added later appears in the editor as is.

Images are immutable and kept per run under random ids (a bounded LRU); a request carries the
whole edit (every slider's value), so concurrent clients share no mutable state. Model calls run
one at a time under a lock, in ``torch.inference_mode``.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..api import load
from ..data.registry import load as load_data
from ..errors import UsageError
from ..metrics.classifier import cached_classifier, evaluation_classifier
from ..viz.grids import png_bytes
from ..viz.io import read_image

EXAMPLES = 6  # fixed example images from the run's test split
RANGE_IMAGES = 256  # test images whose codes set each knob's range and its factor finding
MAX_IMAGES = 512  # uploaded/derived images kept per run (oldest dropped first)


class UnknownImage(UsageError):
    """An image id this server does not hold (never uploaded, or dropped from the LRU)."""


def data_url(image: torch.Tensor) -> str:
    """A (C, H, W) image in [0, 1] as a PNG data URL."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image.cpu())).decode("ascii")


class RunEditor:
    """The model of one run directory and everything the editor serves for it."""

    def __init__(self, run_dir: str | Path, judge: Any = "auto", edit_output: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.model = load(self.run_dir, edit_output=edit_output)
        self.info = self.model.info
        self.lock = threading.Lock()
        self._images: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._images_lock = threading.Lock()
        cfg = self.model.run_config
        try:
            self.test = load_data(cfg.data_name, "test", root=cfg.data_root, options=cfg.data)
            if len(self.test) == 0:
                raise UsageError("the test split is empty")
            self.data_note = None
            self.example_indices = np.sort(np.random.default_rng(0).choice(len(self.test), min(EXAMPLES, len(self.test)),
                                                                           replace=False))
        except Exception as exc:  # the run's data may be gone (a CelebA path): uploads still work
            self.test, self.data_note = None, f"the run's test data is unavailable ({exc}); upload images instead"
        self.judge, self.judge_note = None, None
        self._judge_mode(judge)
        self._codes = self._factor_codes()

    # --- the judge -----------------------------------------------------------------------------
    def _judge_mode(self, judge: Any) -> None:
        """``auto``: the cached judge of a procedural dataset, else trained in the background;
        ``off``: none; a Judge object: that one (tests)."""
        if judge == "off":
            self.judge_note = "judge off (--judge off)"
            return
        if not isinstance(judge, str):
            self.judge = judge
            return
        if judge != "auto":
            raise UsageError(f"--judge {judge!r}: use auto or off")
        if not self.info.procedural or self.test is None:
            self.judge_note = "no judge: it reads the factors of procedural datasets only"
            return
        cfg = self.model.run_config
        train = load_data(cfg.data_name, "train", root=cfg.data_root, options=cfg.data)
        found = cached_classifier(train)
        if found is not None:
            self.judge = found[0].eval()
            return
        self.judge_note = "the judge is training (first use on this dataset, about 12 minutes on 2 cores); readings follow"

        def train_judge() -> None:
            judge, _ = evaluation_classifier(train, self.test)
            self.judge, self.judge_note = judge.eval(), None

        threading.Thread(target=train_judge, name="factorkit-judge", daemon=True).start()

    def reading(self, image: torch.Tensor) -> dict[str, Any] | None:
        """The judge's reading of one image: attribute probabilities and every factor's value."""
        judge = self.judge
        if judge is None:
            return None
        with torch.inference_mode():
            x = image.to(torch.float32)
            out: dict[str, Any] = {"attributes": {}, "factors": {}}
            if self.info.attributes:
                p = judge.probabilities(x)[0]
                out["attributes"] = {a: round(float(p[k]), 3) for k, a in enumerate(self.info.attributes)}
            if self.info.factors:
                values = judge.read(x)[0]
                for j, f in enumerate(self.info.factors):
                    v = int(values[j])
                    out["factors"][f.name] = str(f.values[v]) if f.values else str(v)
        return out

    # --- controls ------------------------------------------------------------------------------
    def _factor_codes(self) -> dict[str, Any]:
        """Codes of test images (knob ranges) and, with factors, each knob's strongest factor."""
        out: dict[str, Any] = {"codes": None, "findings": {}}
        if not self.model.supports("traverse") or self.test is None:
            return out
        rng = np.random.default_rng(0)
        idx = np.sort(rng.choice(len(self.test), min(RANGE_IMAGES, len(self.test)), replace=False))
        with torch.inference_mode():
            codes = self.model.traversal_code(self.test.images_at(idx).to(self.model.device)).tensor.float().cpu()
        out["codes"] = codes
        if self.info.factors and len(idx) > 2:
            factors = self.test.factor_array()[idx].astype(np.float64)
            c = codes.numpy().astype(np.float64)
            cs, fs = c - c.mean(0), factors - factors.mean(0)
            denom = np.outer(np.sqrt((cs ** 2).sum(0)), np.sqrt((fs ** 2).sum(0)))
            r = np.divide(cs.T @ fs, denom, out=np.zeros((c.shape[1], fs.shape[1])), where=denom > 0)
            for d in range(c.shape[1]):
                j = int(np.abs(r[d]).argmax())
                if abs(r[d, j]) >= 0.3:
                    out["findings"][d] = f"→ {self.info.factors[j].name} (r = {r[d, j]:+.2f} on {len(idx)} test images)"
        return out

    def spec(self) -> dict[str, Any]:
        """What the page draws for this run, from the operations the model declares."""
        m, info = self.model, self.info
        spec: dict[str, Any] = {
            "name": self.run_dir.name, "model": m.name, "data": info.name, "paper": m.paper,
            "supervision": m.supervision, "layout": m.layout, "size": info.size, "channels": info.channels,
            "operations": sorted(m.operations), "examples": EXAMPLES if self.test is not None else 0,
            "notes": [n for n in (self.data_note, self.judge_note) if n],
            "judge": self.judge is not None,
        }
        if m.supports("edit") and info.attributes:
            kind = "classes" if info.attribute_kind != "binary" else "binary"
            ranges = {a: m.edit_range(a) for a in m.edit_attributes()}
            spec["edit"] = {"kind": kind, "controls": [{"name": a, "lo": lo, "hi": hi} for a, (lo, hi) in ranges.items()]}
        if m.supports("swap"):
            names = [str(c) for c in m.chunk_names()]
            spec["swap"] = {"pieces": [{"name": c, "label": c.replace("chunk", "chunk ") if c.startswith("chunk") else
                                        (c + " piece" if c != "z" else "z (the rest)")} for c in names]}
        if m.supports("traverse"):
            codes = self._codes["codes"]
            dims = codes.shape[1] if codes is not None else m.traversal_code(
                torch.zeros(1, *info.image_shape, device=m.device)).dim
            controls = []
            for d in range(dims):
                lo, hi = m.traversal_range(d, codes)
                controls.append({"dim": d, "label": f"dimension {d}{m.dimension_label(d)}", "lo": lo, "hi": hi,
                                 "finding": self._codes["findings"].get(d, "")})
            spec["traverse"] = {"controls": controls}
        spec["sample"] = m.supports("sample")
        return spec

    # --- images --------------------------------------------------------------------------------
    def _keep(self, image: torch.Tensor) -> str:
        key = secrets.token_hex(8)
        with self._images_lock:
            self._images[key] = image
            while len(self._images) > MAX_IMAGES:
                self._images.popitem(last=False)
        return key

    def image(self, key: str) -> torch.Tensor:
        with self._images_lock:
            if key not in self._images:
                raise UnknownImage(f"unknown image {key!r} (never uploaded here, or dropped); upload it again")
            self._images.move_to_end(key)
            return self._images[key]

    def add_upload(self, data: bytes, name: str | None = None) -> dict[str, Any]:
        image, notice = read_image(data, self.info.channels, self.info.size, name=name or "the upload")
        return self._record(image, notice)

    def add_example(self, which: str) -> dict[str, Any]:
        if self.test is None:
            raise UsageError(self.data_note or "this run has no test data")
        if which == "random":
            k = secrets.randbelow(len(self.test))
        else:
            try:
                i = int(which)
            except ValueError:
                raise UsageError(f"example {which!r}: give 0..{EXAMPLES - 1} or random") from None
            if not 0 <= i < EXAMPLES:
                raise UsageError(f"example {i}: give 0..{EXAMPLES - 1} or random")
            k = int(self.example_indices[i % len(self.example_indices)])
        image = (self.test.images_at([k]).float() * 255).round() / 255  # the 8-bit image the page shows is the one edited
        return self._record(image, None, source=f"test image {k}")

    def _record(self, image: torch.Tensor, notice: str | None, source: str = "upload") -> dict[str, Any]:
        m = self.model
        with self.lock, torch.inference_mode():
            x = image.to(m.device)
            rec = m.reconstruct(x)
            values = {a: round(float(v[0]), 3) for a, v in m.attribute_values(x).items()} if m.supports("edit") else {}
            knobs = m.traversal_code(x).tensor[0].float().cpu().tolist() if m.supports("traverse") else []
        return {"id": self._keep(image.cpu()), "source": source, "notice": notice, "image": data_url(image[0]),
                "reconstruction": data_url(rec[0]), "values": values, "knobs": [round(v, 4) for v in knobs],
                "reading": self.reading(image), "reconstruction_reading": self.reading(rec.cpu())}

    # --- operations ------------------------------------------------------------------------------
    def _result(self, out: torch.Tensor) -> dict[str, Any]:
        out = out.cpu()
        return {"image": data_url(out[0]), "reading": self.reading(out[:1])}

    def edit(self, key: str, values: dict[str, float]) -> dict[str, Any]:
        m = self.model
        m.require("edit")
        allowed = {a.lower(): a for a in m.edit_attributes()}
        unknown = [a for a in values if a.lower() not in allowed]
        if unknown:
            raise UsageError(f"unknown attribute {unknown[0]!r}; {m.name} edits {', '.join(m.edit_attributes())}")
        x = self.image(key)
        if not values:
            with self.lock, torch.inference_mode():
                return self._result(m.reconstruct(x.to(m.device)))
        for a, v in values.items():
            lo, hi = m.edit_range(allowed[a.lower()])
            span = hi - lo
            if not (lo - span <= v <= hi + span):
                raise UsageError(f"{a}={v}: outside {lo - span:g}..{hi + span:g} (the useful range is {lo:g}..{hi:g})")
        with self.lock, torch.inference_mode():
            return self._result(m.edit_many(x.to(m.device), {allowed[a.lower()]: float(v) for a, v in values.items()}))

    def swap(self, key: str, other: str, pieces: list[str]) -> dict[str, Any]:
        """The first image with the listed pieces (chunks, attribute pieces) of the second."""
        m = self.model
        m.require("swap")
        names = [str(c) for c in m.chunk_names()]
        by_case = {c.lower(): c for c in names}
        unknown = [p for p in pieces if str(p).lower() not in by_case]
        if unknown or not pieces:
            raise UsageError(f"unknown piece {unknown[0]!r}; {m.name} swaps {', '.join(names)}" if unknown else
                             f"name the pieces to swap: {', '.join(names)}")
        a, b = self.image(key), self.image(other)
        with self.lock, torch.inference_mode():
            return self._result(m.swap(b.to(m.device), a.to(m.device), [by_case[str(p).lower()] for p in pieces]))

    def traverse(self, key: str, values: dict[int, float]) -> dict[str, Any]:
        m = self.model
        m.require("traverse")
        x = self.image(key)
        for v in values.values():
            if not np.isfinite(v) or abs(v) > 1e4:
                raise UsageError(f"knob value {v}: give a finite number within ±10,000")
        with self.lock, torch.inference_mode():
            return self._result(m.set_dimensions(x.to(m.device), values))

    def sample(self, n: int, seed: int) -> dict[str, Any]:
        m = self.model
        m.require("sample")
        with self.lock, torch.inference_mode():
            out = m.sample(n, generator=torch.Generator().manual_seed(seed)).cpu()
        return {"images": [data_url(im) for im in out], "ids": [self._keep(im[None]) for im in out]}
