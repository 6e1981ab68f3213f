"""Model base class and Code, the named representation every model returns from ``encode``.

A model is an ``nn.Module`` with a nested ``Config`` dataclass (defaults = the paper's), its
players' optimizers (``configure_optimizers``) and its own update order (``train_step``). The
trainer hands ``train_step`` a batch and ``opt``; ``opt.step(name, loss)`` does zero_grad,
backward (into that player's parameters only), AMP scaling, gradient sync and the step.

User-facing operations take and return images in [0, 1], shape (N, C, H, W). A model lists the
operations it supports in ``operations``; the others raise :class:`UnsupportedOperation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..data.base import DatasetInfo
from ..errors import UnsupportedOperation, UsageError
from ..nn.similarity import gaussian_blur

Tensor = torch.Tensor

ALL_OPERATIONS = ("encode", "decode", "reconstruct", "edit", "swap", "traverse", "sample")


@dataclass
class Code:
    """A representation: ``tensor`` (N, D) plus named slices of its columns.

    ``slices`` names the pieces a method defines (attribute pieces, chunks, knobs, ŷ and z);
    ``extras`` carries what decoding needs beyond the flat tensor (e.g. a VAE's log-variance).
    """

    tensor: Tensor
    slices: dict[str, slice] = field(default_factory=dict)
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Tensor:
        if name not in self.slices:
            raise UsageError(f"unknown code part {name!r}; parts: {', '.join(self.slices) or '(none)'}")
        return self.tensor[:, self.slices[name]]

    def with_part(self, name: str, value: Tensor) -> "Code":
        """A copy with part ``name`` replaced."""
        t = self.tensor.clone()
        t[:, self.slices[name]] = value
        return Code(t, dict(self.slices), dict(self.extras))

    def __len__(self) -> int:
        return self.tensor.shape[0]

    @property
    def dim(self) -> int:
        return self.tensor.shape[1]


class Model(nn.Module):
    """Base class of every factorkit model."""

    name: ClassVar[str] = "model"
    paper: ClassVar[str] = ""
    supervision: ClassVar[str] = "none"  # none | attributes | classes | one attribute | guidance
    layout: ClassVar[str] = ""  # human description of the representation
    operations: ClassVar[frozenset[str]] = frozenset({"encode", "decode", "reconstruct"})
    Config: ClassVar[type]

    def __init__(self, config: Any, info: DatasetInfo) -> None:
        super().__init__()
        self.config = config
        self.info = info

    # --- configuration -------------------------------------------------------------------
    @classmethod
    def presets(cls, info: DatasetInfo) -> dict[str, dict[str, Any]]:
        """``{"fast": {...}, "paper": {...}}``: overrides of ``model.*`` / ``train.*`` keys for
        this dataset. ``fast`` is the CPU-friendly default."""
        return {"fast": {}, "paper": {}}

    @classmethod
    def check_data(cls, info: DatasetInfo) -> None:
        """Raise :class:`UsageError` when the model cannot be trained on this dataset."""

    # --- training ------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def configure_schedulers(self, optimizers: dict[str, torch.optim.Optimizer], steps: int) -> dict[str, Any]:
        """Learning-rate schedulers by player, stepped once per training step; ``steps`` is the
        run's ``train.steps`` (for schedules that end with the run)."""
        return {}

    def train_step(self, batch: dict[str, Tensor], step: int, opt: Any) -> dict[str, Tensor]:
        raise NotImplementedError

    def batch_sampler(self, dataset: Any, batch_size: int, seed: int, rank: int, world: int, start: int) -> Any:
        """A resumable batch sampler of ``dataset`` indices for models that compose their own batches
        (batch ``start`` first; ``rank``'s share of each global batch), or None for the trainer's
        shuffled batches."""
        return None

    def visuals(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Image rows for TensorBoard/report grids: name → (N, C, H, W) in [0, 1]."""
        x = batch["image"][:8]
        return {"input": x, "reconstruction": self.reconstruct(x)}

    # --- user-facing operations ----------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def supports(self, operation: str) -> bool:
        return operation in self.operations

    def require(self, operation: str) -> None:
        if operation not in self.operations:
            raise UnsupportedOperation(
                f"model {self.name!r} does not support {operation!r}; it supports: "
                + ", ".join(op for op in ALL_OPERATIONS if op in self.operations)
            )

    def check_images(self, images: Tensor) -> Tensor:
        """Validate an image batch at the API boundary (shape, range) and move it to the model."""
        if not torch.is_tensor(images):
            raise UsageError("images must be a torch tensor (N, C, H, W) with values in [0, 1]")
        if images.dim() == 3:
            images = images[None]
        expected = tuple(self.info.image_shape)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise UsageError(
                f"{self.name} expects images of shape (N, {expected[0]}, {expected[1]}, {expected[2]}), "
                f"got {tuple(images.shape)}"
            )
        return images.to(self.device, torch.float32)

    def encode(self, images: Tensor) -> Code:
        raise NotImplementedError

    def decode(self, code: Code) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        return self.decode(self.encode(images))

    @torch.no_grad()
    def representation(self, images: Tensor) -> Tensor:
        """The (N, D) features the metrics score (encoder mean for VAEs)."""
        return self.encode(images).tensor

    def edit_attributes(self) -> list[str]:
        """The attributes ``edit`` can set: all of the dataset's, unless the model carries fewer."""
        return list(self.info.attributes)

    def edit(self, images: Tensor, attribute: str, value: float, **kwargs: Any) -> Tensor:
        self.require("edit")
        raise NotImplementedError

    def edit_range(self, attribute: str) -> tuple[float, float]:
        """The useful range of ``edit``'s value for ``attribute`` (an editor's slider)."""
        return 0.0, 1.0

    @torch.no_grad()
    def attribute_values(self, images: Tensor) -> dict[str, Tensor]:
        """Each edit attribute's value as the model reads it from ``images`` ((N,) per name; where an
        editor's slider starts); empty when the model reads none."""
        return {}

    @torch.no_grad()
    def edit_many(self, images: Tensor, values: dict[str, float]) -> Tensor:
        """Set several attributes at once. Default: one ``edit`` after another (each re-encodes the
        previous edit); models whose attributes are code entries set them all in one decode."""
        self.require("edit")
        out = self.check_images(images)
        for attribute, value in values.items():
            out = self.edit(out, attribute, value)
        return out

    def swap(self, images_a: Tensor, images_b: Tensor, chunks: list[int] | list[str], **kwargs: Any) -> Tensor:
        self.require("swap")
        raise NotImplementedError

    def traversal_code(self, images: Tensor) -> Code:
        """The code ``traverse`` and ``set_dimensions`` start from (the encoder's, by default)."""
        return self.encode(images)

    @torch.no_grad()
    def traverse(self, images: Tensor, dim: int, values: Tensor | list[float]) -> Tensor:
        """(N, V, C, H, W): each image's code with dimension ``dim`` set to each of ``values``."""
        self.require("traverse")
        code = self.traversal_code(images)
        out = self.decode_traversal(code, dim, values)
        if self._residual():  # every column gets the input plus that column's change
            x = self.check_images(images)
            return residual_output(x[:, None], out, self.decode(code)[:, None])
        return out

    @torch.no_grad()
    def set_dimensions(self, images: Tensor, values: dict[int, float]) -> Tensor:
        """(N, C, H, W): each image's code with several dimensions set at once (an editor's knobs)."""
        self.require("traverse")
        code = self.traversal_code(images)
        t = code.tensor.clone()
        for dim, value in values.items():
            if not 0 <= int(dim) < code.dim:
                raise UsageError(f"dimension {dim} out of range 0..{code.dim - 1}")
            t[:, int(dim)] = float(value)
        out = self.decode(Code(t, code.slices, code.extras))
        return residual_output(self.check_images(images), out, self.decode(code)) if self._residual() else out

    def _residual(self) -> bool:
        """``model.edit_output=residual`` (models that have the switch): edits of a user's image return
        the input plus the decoder's change (:func:`residual_output`)."""
        return getattr(self.config, "edit_output", "decoded") == "residual"

    def decode_traversal(self, code: Code, dim: int, values) -> Tensor:
        """(N, V, C, H, W): ``code`` with dimension ``dim`` set to each of ``values``, decoded."""
        if not 0 <= dim < code.dim:
            raise UsageError(f"traverse: dimension {dim} out of range 0..{code.dim - 1}")
        values = torch.as_tensor(values, dtype=code.tensor.dtype, device=code.tensor.device)
        n, v = len(code), len(values)
        t = code.tensor.repeat_interleave(v, dim=0)
        t[:, dim] = values.repeat(n)
        out = self.decode(Code(t, code.slices, {k: e.repeat_interleave(v, 0) for k, e in code.extras.items()}))
        return out.view(n, v, *out.shape[1:])

    def sample_code(self, n: int, generator: torch.Generator | None = None) -> Code:
        """``n`` codes drawn from the model's prior (what ``sample`` decodes)."""
        self.require("sample")
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.decode(self.sample_code(n, generator))

    @torch.no_grad()
    def traverse_samples(self, n: int, dim: int, values, generator: torch.Generator | None = None) -> Tensor:
        """(n, V, C, H, W): ``n`` codes from the prior with dimension ``dim`` swept over ``values``
        (a GAN's knob traversal; no encoder involved)."""
        return self.decode_traversal(self.sample_code(n, generator), dim, values)

    def traversal_range(self, dim: int, codes: Tensor | None = None) -> tuple[float, float]:
        """Range to traverse code dimension ``dim``: the 2nd–98th percentile of ``codes``
        (codes of real images) when given, else ±3."""
        if codes is not None and len(codes) > 1:
            q = torch.quantile(codes[:, dim].float().cpu(), torch.tensor([0.02, 0.98]))
            return float(q[0]), float(q[1])
        return -3.0, 3.0

    def dimension_label(self, dim: int) -> str:
        """A name for code dimension ``dim`` in reports (e.g. ' (ŷ Smiling)')."""
        return ""


def resolve_attributes(info: DatasetInfo, names: tuple[str, ...]) -> list[str]:
    """``model.attributes`` as the dataset spells them (any case); empty: all of the dataset's. An
    unknown name is the dataset's error (it lists the valid ones); a name given twice is refused."""
    if not names:
        return list(info.attributes)
    out = [info.attributes[info.attribute_index(a)] for a in names]
    if len(set(out)) != len(out):
        raise UsageError(f"model.attributes lists an attribute twice: {', '.join(names)}")
    return out


def require_binary_attributes(model_name: str, info: DatasetInfo, hint: str) -> None:
    """Refuse datasets without binary attributes, naming what ``info`` has and ``hint`` (where to go)."""
    if not info.attributes or info.attribute_kind != "binary":
        what = "classes" if info.attributes else "no attributes"
        raise UsageError(f"{model_name} needs binary attributes; {info.name} has {what} ({hint})")


EDIT_OUTPUT_DOC = (
    "decoded: the edit is the decoder's image (the papers) | residual: the input plus what the edit "
    "changes in the decoder's output, x + (D(edited code) − D(code)) — identity details the "
    "autoencoder blurs are kept (docs/results.md §10, the ceiling of identity-retention) | masked: "
    "the same change, weighed by a mask in [0, 1] (each model says whose; results §11–12)")


def change_mask(change: Tensor, sigma: float = 1.5) -> Tensor:
    """(N, 1, H, W) weights in [0, 1]: how much an edit changes each pixel (|change| summed over
    channels, blurred by ``sigma`` px), over its largest value in that image. Weighing the change by
    it keeps where the edit acts at full strength and fades the faint change it makes elsewhere
    (results §11: IFcVAE-GAN's ``edit_output=masked``); no change gives a zero mask."""
    magnitude = gaussian_blur(change.abs().sum(1, keepdim=True), sigma)
    return magnitude / magnitude.amax((2, 3), keepdim=True).clamp_min(1e-8)


def residual_output(images: Tensor, edited: Tensor, reconstruction: Tensor, mask: Tensor | None = None) -> Tensor:
    """``edit_output=residual``: x + (edited − reconstruction), in [0, 1]. The decoder supplies only
    the change the edit makes; every pixel it would have reproduced unchanged comes from the input,
    so an edit that changes nothing returns the input exactly. ``mask`` (a model's
    ``edit_output=masked``, values in [0, 1]): x + mask ⊙ (edited − reconstruction)."""
    change = edited - reconstruction
    return (images + (change if mask is None else mask * change)).clamp(0, 1)


def images_to_signed(x: Tensor) -> Tensor:
    """[0, 1] → [−1, 1] (for models that work in tanh range)."""
    return x * 2.0 - 1.0


def signed_to_images(x: Tensor) -> Tensor:
    return ((x + 1.0) * 0.5).clamp(0.0, 1.0)
