"""GAN losses: the one place every adversarial method draws from.

Conventions: a discriminator returns *logits* (non-saturating GAN) or unbounded *scores* (WGAN
critic), one per image; every loss is a mean over the batch (``real_loss`` / ``fake_loss`` also
sum, for methods whose code sums); a player minimises its loss.

==========================  =====================================================================
function                    equation
==========================  =====================================================================
``d_loss``                  Goodfellow et al. 2014, eq. 1, D's side as a loss:
                            −E[log D(x)] − E[log(1 − D(G(z)))] = ``real_loss`` + ``fake_loss``
``real_loss``               −log D(·) ("labelled real"), mean or sum over the batch
``fake_loss``               −log(1 − D(·)) ("labelled fake"), mean or sum over the batch
``g_loss``                  Goodfellow et al. 2014, §3 (the non-saturating heuristic): −E[log D(G(z))]
``confusion_loss``          Tzeng et al. 2015, eq. 3 / Alvi et al. 2018, eq. 4 (domain / label
                            confusion): the cross-entropy of the adversary's output against ½ or
                            the label's marginal p — bounded below by H(p), reached at chance
``wgan_critic_loss``        Arjovsky et al. 2017, eq. 3 / Alg. 1 line 5, as a loss:
                            E[f(G(z))] − E[f(x)]
``wgan_generator_loss``     Arjovsky et al. 2017, Alg. 1 line 10: −E[f(G(z))]
``clip_weights``            Arjovsky et al. 2017, Alg. 1 line 7: w ← clip(w, −c, c)
``r1_penalty``              Mescheder et al. 2018, eq. 9: (γ/2) E[‖∇ₓ D(x)‖²] on real data
``gradient_penalty``        Gulrajani et al. 2017, eq. 3: λ E[(‖∇ D(x̂)‖₂ − 1)²],
                            x̂ = εx + (1 − ε)x̃, ε ~ U[0, 1]
``spectral_norm``           Miyato et al. 2018: every conv / linear weight divided by its largest
                            singular value (power iteration), as a switch on a built network
``feature_matching_loss``   Wang et al. 2018 (pix2pixHD), eq. 4: Σ_i mean |D_i(x̂) − D_i(x)| over the
                            discriminator's layers i, the real side a constant — the pairwise feature
                            matching of Bao et al. 2017 (cVAE-GAN) in per-layer L1 form
==========================  =====================================================================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


# --- the non-saturating GAN (Goodfellow et al. 2014) -----------------------------------------------


def real_loss(logits: Tensor, reduction: str = "mean") -> Tensor:
    """−log σ(d): the binary cross-entropy of ``logits`` against the label "real" (1)."""
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction=reduction)


def fake_loss(logits: Tensor, reduction: str = "mean") -> Tensor:
    """−log(1 − σ(d)): the binary cross-entropy of ``logits`` against the label "fake" (0)."""
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction=reduction)


def d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Eq. 1, discriminator side: −E[log σ(d_real)] − E[log(1 − σ(d_fake))] (sum of the two means)."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def g_loss(fake_logits: Tensor) -> Tensor:
    """§3, non-saturating generator loss: −E[log σ(d_fake)]."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def confusion_loss(logits: Tensor, target: Tensor | float = 0.5) -> Tensor:
    """−E[p log σ(a) + (1 − p) log(1 − σ(a))]: what a feature extractor minimises to leave a binary
    adversary at chance. Unlike maximising the adversary's own loss it is bounded (≥ H(p)).

    ``target`` p is ½ (Tzeng et al.; Alvi et al., balanced classes) or, per unit, the label's
    marginal rate: an adversary that reads nothing from the features outputs the marginal, so only
    with p = the marginal is "the features carry no label" the extractor's optimum. With ½ and an
    imbalanced label the extractor is pushed on even after the adversary is blind (results §11)."""
    return F.binary_cross_entropy_with_logits(logits, torch.as_tensor(target, dtype=logits.dtype,
                                                                       device=logits.device).expand_as(logits))


# --- WGAN with weight clipping (Arjovsky et al. 2017) ----------------------------------------------


def wgan_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Eq. 3 as a loss for the critic f: E[f(G(z))] − E[f(x)] (its negative estimates W₁)."""
    return fake_scores.mean() - real_scores.mean()


def wgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """Alg. 1 line 10: the generator minimises −E[f(G(z))]."""
    return -fake_scores.mean()


@torch.no_grad()
def clip_weights(module: nn.Module, c: float) -> None:
    """Alg. 1 line 7: clamp every parameter of the critic to [−c, c] (c = 0.01 in the paper)."""
    if c <= 0:
        raise ValueError(f"clip value must be positive, got {c}")
    for p in module.parameters():
        p.clamp_(-c, c)


# --- penalties -------------------------------------------------------------------------------------


def r1_penalty(real_logits: Tensor, real_images: Tensor, gamma: float) -> Tensor:
    """Eq. 9 of Mescheder et al. 2018: (γ/2) E[‖∇ₓ D(x)‖²] on real images. ``real_images``
    must have ``requires_grad`` set before D is applied; the graph is kept so the penalty
    back-propagates into D."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return 0.5 * gamma * grad.pow(2).flatten(1).sum(1).mean()


def gradient_penalty(critic, real: Tensor, fake: Tensor, weight: float = 10.0,
                     generator: torch.Generator | None = None,
                     real_condition: Tensor | None = None, fake_condition: Tensor | None = None) -> Tensor:
    """Eq. 3 of Gulrajani et al. 2017 (WGAN-GP): λ E[(‖∇ D(x̂)‖₂ − 1)²] on random
    interpolates x̂ = εx + (1 − ε)x̃ between real and generated images (λ = 10 in the paper).

    A conditional critic D(x, c) whose real and generated images come with *different* conditions
    (``real_condition``, ``fake_condition``) is called as ``critic(x̂, ĉ)``, ĉ interpolated with the
    same ε, and the norm is over the gradient in (x̂, ĉ) together: a penalty on x alone leaves the
    critic free to separate the two by their conditions with unbounded scores."""
    eps = torch.rand(real.shape[0], generator=generator, device=real.device, dtype=real.dtype)

    def mix(a: Tensor, b: Tensor) -> Tensor:
        e = eps.view(-1, *([1] * (a.dim() - 1))).to(a.dtype)
        return (e * a.detach() + (1 - e) * b.detach()).requires_grad_(True)
    x_hat = mix(real, fake)
    if real_condition is None:
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        norm = grad.flatten(1).norm(2, dim=1)
    else:
        c_hat = mix(real_condition, fake_condition)
        gx, gc = torch.autograd.grad(critic(x_hat, c_hat).sum(), (x_hat, c_hat), create_graph=True)
        norm = torch.cat([gx.flatten(1), gc.flatten(1)], 1).norm(2, dim=1)
    return weight * (norm - 1).pow(2).mean()


# --- spectral normalisation (Miyato et al. 2018) ----------------------------------------------------


def spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation on every Conv / ConvTranspose / Linear weight of ``module``
    (in place; returns it). Layers that already carry it are left alone."""
    for child in list(module.modules()):
        if isinstance(child, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if not nn.utils.parametrize.is_parametrized(child, "weight"):
                nn.utils.parametrizations.spectral_norm(child)
    return module


# --- feature matching (Wang et al. 2018, eq. 4) ------------------------------------------------------


def feature_matching_loss(fake: list[Tensor], real: list[Tensor]) -> Tensor:
    """Σ_i mean |fake_i − real_i| over paired discriminator activations; the real ones are
    constants (detached): the discriminator does not learn from this term."""
    return sum((a - b.detach()).abs().mean() for a, b in zip(fake, real, strict=True))
