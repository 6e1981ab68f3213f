"""The judge: an independent classifier of every factor and attribute of a dataset, used to
read edited images (IFcVAE-GAN §4.1, methods.md §6.4; issue 16 §1).

Trained on **real training images** of a dataset: one softmax head per ground-truth factor (on
faces the 7 identity factors and the 7 binary attributes; on shapes2d the 5 factors) and one
sigmoid per attribute that is not a factor (CelebA, digits). Its held-out accuracy per factor is
recorded beside every score it produces; it is cached as a versioned artifact and never used to
select checkpoints (nothing in ``train/`` imports it).

Architecture: the IFcVAE-GAN code's discriminator layout, 4× conv k5 p2 + ReLU → FC, at a
``width`` of 16 (16-32-64-128 channels instead of 64…512) so that it trains in minutes on a CPU;
the first convolution at stride 1 (the rest stride 2), since the fine face factors (nose, eye
shape, mouth) are a few pixels wide (measured in docs/results.md §10); cross-entropy per factor +
BCE per attribute, Adam 2e-4 (methods.md §6.4 defaults), 6,000 minibatches of 64.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..files import atomic_write_bytes, atomic_write_text, user_cache_dir

VERSION = 2  # 2: heads for every factor (the judge), not only the attributes


@dataclass(frozen=True)
class Recipe:
    width: int = 16
    steps: int = 6000  # measured: 11 of 14 face factors ≥ 0.97 at 6,000 steps, 8 at 3,000 (results §10)
    batch_size: int = 64
    lr: float = 2e-4
    seed: int = 0
    first_stride: int = 1  # 1: full resolution in the first layer (measured: nose 0.55 → 0.73, eye_shape 0.74 → 0.94)


class Judge(nn.Module):
    """Logits for every factor (softmax over its values) and every attribute that is not a factor."""

    def __init__(self, channels: int, size: int, factor_sizes: tuple[int, ...], attribute_map: tuple[tuple[int, int], ...],
                 num_extra_attributes: int, width: int = 16, first_stride: int = 2) -> None:
        super().__init__()
        layers, c_in, s = [], channels, size
        for i in range(4):
            c, stride = width * 2**i, first_stride if i == 0 else 2
            layers += [nn.Conv2d(c_in, c, 5, stride, 2), nn.ReLU()]
            c_in, s = c, (s + stride - 1) // stride
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.factor_sizes = tuple(int(k) for k in factor_sizes)
        # attribute k is read from factor j's value 1 (attribute_map[k] = (0, j)) or from extra sigmoid i ((1, i))
        self.attribute_map = attribute_map
        self.head = nn.Linear(c_in * s * s, sum(self.factor_sizes) + num_extra_attributes)

    @classmethod
    def for_info(cls, info, width: int = 16, first_stride: int = 2) -> "Judge":
        names = [f.name for f in info.factors]
        amap, extra = [], 0
        for a in info.attributes:
            if a in names and info.factors[names.index(a)].size == 2:
                amap.append((0, names.index(a)))
            else:
                amap.append((1, extra))
                extra += 1
        return cls(info.channels, info.size, tuple(f.size for f in info.factors), tuple(amap), extra, width, first_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, Σ factor sizes + extra attributes) for images in [0, 1]."""
        return self.head(self.features(x))

    def _split(self, logits: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        parts = list(torch.split(logits, [*self.factor_sizes, logits.shape[1] - sum(self.factor_sizes)], dim=1))
        return parts[:-1], parts[-1]

    def loss(self, x: torch.Tensor, factors: torch.Tensor | None, attributes: torch.Tensor) -> torch.Tensor:
        heads, extra = self._split(self(x))
        total = x.new_zeros(())
        for j, logits in enumerate(heads):
            total = total + nn.functional.cross_entropy(logits, factors[:, j].long())
        extra_cols = [k for k, (kind, _) in enumerate(self.attribute_map) if kind == 1]
        if extra_cols:
            total = total + nn.functional.binary_cross_entropy_with_logits(extra, attributes[:, extra_cols].float())
        return total

    @torch.no_grad()
    def _logits(self, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
        self.eval()
        return torch.cat([self(x[i : i + batch].float()) for i in range(0, len(x), batch)])

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
        """P(attribute = 1), (N, A): edit-success's reading."""
        heads, extra = self._split(self._logits(x, batch))
        cols = [torch.softmax(heads[i], 1)[:, 1] if kind == 0 else torch.sigmoid(extra[:, i]) for kind, i in self.attribute_map]
        return torch.stack(cols, 1) if cols else torch.zeros(len(x), 0)

    @torch.no_grad()
    def read(self, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
        """The value of every factor, (N, F) long: identity-retention's and swap-fidelity's reading."""
        heads, _ = self._split(self._logits(x, batch))
        return torch.stack([h.argmax(1) for h in heads], 1) if heads else torch.zeros(len(x), 0, dtype=torch.long)


def cache_root() -> Path:
    return user_cache_dir("classifiers")


def _key(train_dataset, recipe: Recipe) -> str:
    options = getattr(train_dataset, "options", None)
    ident = json.dumps({"v": VERSION, "data": train_dataset.info.name, "root": getattr(train_dataset, "root", None),
                        "options": asdict(options) if options is not None else None, "recipe": asdict(recipe)},
                       sort_keys=True, default=str)
    return f"{train_dataset.info.name}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"


def train_classifier(train_dataset, test_dataset, recipe: Recipe = Recipe(), progress: bool = False):
    """Train on real training images; return (judge, report with held-out accuracies per factor
    and attribute, and the majority-class rate of each)."""
    info = train_dataset.info
    gen = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    judge = Judge.for_info(info, recipe.width, recipe.first_stride)
    opt = torch.optim.Adam(judge.parameters(), lr=recipe.lr)
    n = len(train_dataset)
    judge.train()
    for _step in range(recipe.steps):
        idx = torch.randint(0, n, (recipe.batch_size,), generator=gen).numpy()
        batch = train_dataset.get_batch(np.sort(idx))
        loss = judge.loss(batch["image"], batch.get("factors"), batch["attributes"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    judge.eval()
    x_test = torch.cat([test_dataset.get_batch(np.arange(i, min(i + 512, len(test_dataset))))["image"]
                        for i in range(0, len(test_dataset), 512)])
    report = {"version": VERSION, "recipe": asdict(recipe), "test_images": len(test_dataset),
              "accuracy": {}, "majority": {}, "factor_accuracy": {}, "factor_majority": {}}
    if info.attributes:
        y_test = torch.from_numpy(test_dataset.attribute_array())
        acc = ((judge.probabilities(x_test) > 0.5) == (y_test > 0.5)).float().mean(0)
        majority = torch.maximum(y_test.mean(0), 1 - y_test.mean(0))
        report["accuracy"] = {a: round(float(acc[k]), 4) for k, a in enumerate(info.attributes)}
        report["majority"] = {a: round(float(majority[k]), 4) for k, a in enumerate(info.attributes)}
    if info.factors:
        f_test = torch.from_numpy(test_dataset.factor_array()).long()
        facc = (judge.read(x_test) == f_test).float().mean(0)
        for j, f in enumerate(info.factors):
            counts = np.bincount(f_test[:, j].numpy(), minlength=f.size)
            report["factor_accuracy"][f.name] = round(float(facc[j]), 4)
            report["factor_majority"][f.name] = round(float(counts.max() / counts.sum()), 4)
    return judge, report


def cached_classifier(train_dataset, recipe: Recipe = Recipe()):
    """(judge, report) when this dataset's judge is already cached, else None (nothing is trained)."""
    from safetensors.torch import load

    key = _key(train_dataset, recipe)
    weights, meta = cache_root() / f"{key}.safetensors", cache_root() / f"{key}.json"
    if not (weights.is_file() and meta.is_file()):
        return None
    judge = Judge.for_info(train_dataset.info, recipe.width, recipe.first_stride)
    judge.load_state_dict(load(weights.read_bytes()))
    judge.eval()
    return judge, json.loads(meta.read_text())


def evaluation_classifier(train_dataset, test_dataset, recipe: Recipe = Recipe(), cache: bool = True):
    """The cached judge for this dataset (trained on first use)."""
    from safetensors.torch import save

    key = _key(train_dataset, recipe)
    weights, meta = cache_root() / f"{key}.safetensors", cache_root() / f"{key}.json"
    found = cached_classifier(train_dataset, recipe) if cache else None
    if found is not None:
        return found
    judge, report = train_classifier(train_dataset, test_dataset, recipe)
    if cache:
        atomic_write_bytes(weights, save({k: v.contiguous() for k, v in judge.state_dict().items()}))
        atomic_write_text(meta, json.dumps(report, indent=1))
    return judge, report
