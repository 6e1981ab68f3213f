"""The independent evaluation classifier of ``edit-success`` (IFcVAE-GAN §4.1, methods.md §6.4).

Trained on **real training images** of a dataset to predict all its attributes (one sigmoid
each); its test accuracy is recorded beside every score it produces; it is cached as a
versioned artifact and never used to select checkpoints (nothing in ``train/`` imports it).

Architecture: the IFcVAE-GAN code's discriminator layout, 4× conv k5 s2 p2 + ReLU → FC, at a
``width`` of 16 (16-32-64-128 channels instead of 64…512) so that it trains in minutes on a CPU;
BCE, Adam 2e-4 (methods.md §6.4 defaults), ``steps`` minibatches of 64.
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

VERSION = 1


@dataclass(frozen=True)
class Recipe:
    width: int = 16
    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-4
    seed: int = 0


class AttributeClassifier(nn.Module):
    def __init__(self, channels: int, size: int, num_attributes: int, width: int = 16) -> None:
        super().__init__()
        layers, c_in, s = [], channels, size
        for i in range(4):
            c = width * 2**i
            layers += [nn.Conv2d(c_in, c, 5, 2, 2), nn.ReLU()]
            c_in, s = c, (s + 1) // 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(c_in * s * s, num_attributes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, A) for images in [0, 1]."""
        return self.head(self.features(x))

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
        self.eval()
        return torch.cat([torch.sigmoid(self(x[i : i + batch].float())) for i in range(0, len(x), batch)])


def cache_root() -> Path:
    return user_cache_dir("classifiers")


def _key(train_dataset, recipe: Recipe) -> str:
    options = getattr(train_dataset, "options", None)
    ident = json.dumps({"v": VERSION, "data": train_dataset.info.name, "root": getattr(train_dataset, "root", None),
                        "options": asdict(options) if options is not None else None, "recipe": asdict(recipe)},
                       sort_keys=True, default=str)
    return f"{train_dataset.info.name}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"


def train_classifier(train_dataset, test_dataset, recipe: Recipe = Recipe(), progress: bool = False):
    """Train on real training images; return (classifier, report with test accuracies)."""
    info = train_dataset.info
    gen = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    clf = AttributeClassifier(info.channels, info.size, len(info.attributes), recipe.width)
    opt = torch.optim.Adam(clf.parameters(), lr=recipe.lr)
    n = len(train_dataset)
    clf.train()
    for _step in range(recipe.steps):
        idx = torch.randint(0, n, (recipe.batch_size,), generator=gen).numpy()
        batch = train_dataset.get_batch(np.sort(idx))
        loss = nn.functional.binary_cross_entropy_with_logits(clf(batch["image"]), batch["attributes"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    clf.eval()
    x_test = torch.cat([test_dataset.get_batch(np.arange(i, min(i + 512, len(test_dataset))))["image"]
                        for i in range(0, len(test_dataset), 512)])
    y_test = torch.from_numpy(test_dataset.attribute_array())
    pred = clf.probabilities(x_test) > 0.5
    acc = (pred == (y_test > 0.5)).float().mean(0)
    majority = torch.maximum(y_test.mean(0), 1 - y_test.mean(0))
    report = {
        "version": VERSION,
        "recipe": asdict(recipe),
        "test_images": len(test_dataset),
        "accuracy": {a: round(float(acc[k]), 4) for k, a in enumerate(info.attributes)},
        "majority": {a: round(float(majority[k]), 4) for k, a in enumerate(info.attributes)},
    }
    return clf, report


def evaluation_classifier(train_dataset, test_dataset, recipe: Recipe = Recipe(), cache: bool = True):
    """The cached classifier for this dataset (trained on first use)."""
    from safetensors.torch import load, save

    info = train_dataset.info
    key = _key(train_dataset, recipe)
    weights, meta = cache_root() / f"{key}.safetensors", cache_root() / f"{key}.json"
    clf = AttributeClassifier(info.channels, info.size, len(info.attributes), recipe.width)
    if cache and weights.is_file() and meta.is_file():
        clf.load_state_dict(load(weights.read_bytes()))
        clf.eval()
        return clf, json.loads(meta.read_text())
    clf, report = train_classifier(train_dataset, test_dataset, recipe)
    if cache:
        atomic_write_bytes(weights, save({k: v.contiguous() for k, v in clf.state_dict().items()}))
        atomic_write_text(meta, json.dumps(report, indent=1))
    return clf, report
