"""Why the mixing autoencoder's adversarial term collapsed the decoder (issue 6, docs/results.md §6).

Trains one Table-2 row on ``--data`` (default faces; fast preset plus any ``--set`` overrides)
with the model's own ``train_step`` and logs, every ``--every`` steps, on a fixed batch of 64
training images:

* ``ae``     — plain autoencoding error |Dec(Enc(x)) − x|² (in [−1, 1] units);
* ``spread`` — per-pixel standard deviation of the reconstructions across the batch, averaged
  (the data's own spread is printed first; a collapsed decoder is near 0);
* ``|g_gan|``, ``|g_mix|`` — norms of the decoder gradients of λ_G·L_G and λ_M·L_M (eqs. 2, 1);
* ``D(real)``, ``D(fake)`` — mean discriminator probabilities on x1 and on the mixed image x3
  (these four only for rows with both G and MIX).

    python benchmarks/mixing_gan_probe.py --terms MIX+G --steps 200 --set d_norm=batch
    python benchmarks/mixing_gan_probe.py --terms MIX+G --steps 200 --set d_norm=spectral
    python benchmarks/mixing_gan_probe.py --data shapes2d --terms MIX+G --steps 600 --set lambda_mix=1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import factorkit as fk
from factorkit.config import field_types, parse_value
from factorkit.models.base import images_to_signed
from factorkit.models.mixing import Mixing
from factorkit.train.distributed import Dist
from factorkit.train.trainer import Players


def grad_norm(loss, params) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True)
    return float(torch.sqrt(sum((g**2).sum() for g in grads)))


def probe(model: Mixing, x: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        rec = model.decoder(model.encoder(x))
    out = {"ae": float(((rec - x) ** 2).mean()), "spread": float(rec.std(0).mean())}
    if model.w["gan"] and model.w["mix"]:
        x1 = x[:32]
        f1 = model.encoder(x1)
        _, _, _, mask, x3 = model.mixed(x1, f1)
        params = list(model.decoder.parameters())
        d_fake = model.discriminator(x3)
        out["|g_gan|"] = grad_norm(model.w["gan"] * model.gan_loss(d_fake), params)
        out["|g_mix|"] = grad_norm(model.w["mix"] * model.mix_loss(x1, f1, mask, x3), params)
        with torch.no_grad():
            out["D(real)"] = float(torch.sigmoid(model.discriminator(x1)).mean())
            out["D(fake)"] = float(torch.sigmoid(d_fake).mean())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="faces")
    p.add_argument("--terms", default="MIX+G")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model option, e.g. d_norm=batch")
    a = p.parse_args()
    torch.set_num_threads(2)
    ds = fk.data.load(a.data, "train")
    types = field_types(Mixing.Config)
    overrides = {}
    for item in a.set:
        key, text = item.split("=", 1)
        overrides[key] = parse_value(text, types[key], f"model.{key}")
    model = fk.models.build("mixing", ds, seed=0, terms=a.terms, **overrides)
    opts = model.configure_optimizers()
    rng = np.random.default_rng(0)

    def fetch():
        return {"image": ds.images_at(np.sort(rng.choice(len(ds), a.batch_size, replace=False)))}

    players = Players(opts, {k: None for k in opts}, Dist(), fetch)
    x = images_to_signed(ds.images_at(np.arange(64)))
    print(f"{a.data}: terms {a.terms}, d_norm {model.config.d_norm}, lr {model.config.lr}, weights {model.w}; "
          f"data spread {float(x.std(0).mean()):.3f}")
    t0 = time.perf_counter()
    for step in range(a.steps + 1):
        players.current_step = step
        model.train_step(fetch(), step, players)
        if step % a.every == 0:
            cells = "  ".join(f"{k} {v:.3f}" for k, v in probe(model, x).items())
            print(f"step {step:5d}  {time.perf_counter() - t0:5.0f} s  {cells}", flush=True)


if __name__ == "__main__":
    main()
