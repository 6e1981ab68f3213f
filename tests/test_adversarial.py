"""nn/adversarial.py against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from factorkit.nn import adversarial as adv


def test_nonsaturating_losses_by_hand():
    # σ(0) = 1/2, σ(ln 3) = 3/4, σ(−ln 3) = 1/4
    real = torch.tensor([0.0, math.log(3.0)])
    fake = torch.tensor([-math.log(3.0), 0.0])
    # D: −mean(log σ(real)) − mean(log(1 − σ(fake))) = −½(log ½ + log ¾) − ½(log ¾ + log ½)
    expected_d = -0.5 * (math.log(0.5) + math.log(0.75)) - 0.5 * (math.log(0.75) + math.log(0.5))
    assert adv.d_loss(real, fake).item() == pytest.approx(expected_d, abs=1e-6)
    # G (non-saturating): −mean(log σ(fake)) = −½(log ¼ + log ½)
    assert adv.g_loss(fake).item() == pytest.approx(-0.5 * (math.log(0.25) + math.log(0.5)), abs=1e-6)


def test_nonsaturating_gradient_does_not_vanish_where_d_is_sure():
    # the reason for the heuristic (§3): at σ(d) ≈ 0 the minimax −log(1−σ) loses its gradient, −log σ keeps it
    fake = torch.tensor([-10.0], requires_grad=True)
    adv.g_loss(fake).backward()
    assert fake.grad.item() == pytest.approx(-(1 - torch.sigmoid(torch.tensor(-10.0))).item(), rel=1e-5)
    assert abs(fake.grad.item()) > 0.99


def test_wgan_losses_by_hand():
    real = torch.tensor([1.0, 3.0])  # mean 2
    fake = torch.tensor([-1.0, 0.0, 4.0])  # mean 1
    assert adv.wgan_critic_loss(real, fake).item() == pytest.approx(1.0 - 2.0)
    assert adv.wgan_generator_loss(fake).item() == pytest.approx(-1.0)


def test_clip_weights_bounds_every_parameter():
    critic = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    with torch.no_grad():
        critic[0].weight.copy_(torch.tensor([[0.5, -0.2, 0.001]] * 4))
        critic[1].bias.fill_(-3.0)
    adv.clip_weights(critic, 0.01)
    assert torch.equal(critic[0].weight[0], torch.tensor([0.01, -0.01, 0.001]))
    assert critic[1].bias.item() == pytest.approx(-0.01)
    for p in critic.parameters():
        assert float(p.detach().abs().max()) <= 0.01
    with pytest.raises(ValueError, match="positive"):
        adv.clip_weights(critic, 0.0)


def test_r1_penalty_by_hand():
    # D(x) = Σ w·x per image has ∇ₓ = w; R1 = γ/2 · ‖w‖² = 10/2 · (1 + 4 + 4) = 45
    w = torch.tensor([1.0, -2.0, 2.0])
    x = torch.randn(5, 3, requires_grad=True)
    assert adv.r1_penalty(x @ w, x, gamma=10.0).item() == pytest.approx(45.0)


def test_gradient_penalty_by_hand():
    # a linear critic has ‖∇‖ = ‖w‖ = 3 everywhere: λ (3 − 1)² = 10 · 4 = 40, whatever ε
    critic = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[1.0, 2.0, 2.0]]))
    real, fake = torch.randn(6, 3), torch.randn(6, 3)
    gp = adv.gradient_penalty(critic, real, fake, weight=10.0, generator=torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx(40.0, rel=1e-6)
    gp.backward()  # back-propagates into the critic: d/dw 10(‖w‖−1)² = 20(‖w‖−1) w/‖w‖
    torch.testing.assert_close(critic.weight.grad, 20 * 2 * torch.tensor([[1.0, 2.0, 2.0]]) / 3)


def test_conditional_gradient_penalty_takes_the_norm_over_image_and_condition():
    # D(x, c) = x·w + c·v: ∇ = (w, v) everywhere, ‖(w, v)‖ = √(9 + 16) = 5: λ (5 − 1)² = 160; the image alone would give 40
    w, v = torch.tensor([1.0, 2.0, 2.0]), torch.tensor([4.0, 0.0])
    seen = []

    def critic(x, c):
        seen.append(torch.equal(c, c_real) or torch.equal(c, c_fake))  # the conditions are interpolated too
        return x @ w + c @ v
    real, fake = torch.randn(6, 3), torch.randn(6, 3)
    c_real, c_fake = torch.ones(6, 2), torch.zeros(6, 2)
    gp = adv.gradient_penalty(critic, real, fake, weight=10.0, generator=torch.Generator().manual_seed(0),
                              real_condition=c_real, fake_condition=c_fake)
    assert gp.item() == pytest.approx(160.0, rel=1e-6) and seen == [False]


def test_spectral_norm_switch_bounds_the_largest_singular_value():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        net[0].weight.mul_(10)
    assert torch.linalg.matrix_norm(net[0].weight, 2) > 2
    adv.spectral_norm(net)
    for _ in range(20):  # power iteration converges over forward passes in train mode
        net(torch.randn(4, 8))
    assert torch.linalg.matrix_norm(net[0].weight, 2).item() == pytest.approx(1.0, abs=1e-3)
    adv.spectral_norm(net)  # applying it twice leaves one parametrisation
    assert len(net[0].parametrizations.weight) == 1


def test_real_and_fake_losses_by_hand_in_both_reductions():
    d = torch.tensor([2.0, -1.0, 0.0])
    sig = torch.sigmoid(d)
    torch.testing.assert_close(adv.real_loss(d), -sig.log().mean())
    torch.testing.assert_close(adv.fake_loss(d, reduction="sum"), -(1 - sig).log().sum())
    torch.testing.assert_close(adv.d_loss(d[:2], d[2:]), adv.real_loss(d[:2]) + adv.fake_loss(d[2:]))
    torch.testing.assert_close(adv.g_loss(d), adv.real_loss(d))
