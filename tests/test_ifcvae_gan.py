"""IFcVAE-GAN (methods.md §3): losses against hand computations, the adversarial sign of L_aux,
one method per player, the switches where paper and code differ, editing, unsupported operations."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import factorkit as fk
from factorkit.errors import NonFiniteLoss, UnsupportedOperation, UsageError
from factorkit.models.base import change_mask
from factorkit.nn import adversarial as adv
from factorkit.train.distributed import Dist
from factorkit.train.trainer import Players

TINY = {"z_dim": 6, "width": 4, "aux_hidden": 8}


@pytest.fixture(scope="module")
def faces():
    return fk.data.load("faces", "test", size=200)


def build(ds, name="ifcvae-gan", **kw):
    return fk.models.build(name, ds, seed=0, **{**TINY, **kw})


def players(model, fetch=None):
    opts = model.configure_optimizers()
    return Players(opts, {n: None for n in opts}, Dist(), fetch=fetch)


# --- losses by hand ----------------------------------------------------------------------------


def _bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_reconstruction_and_kl_by_hand_in_both_reductions(faces):
    logits = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]], [[[1.0, 1.0], [-2.0, 0.3]]]])  # (2, 1, 2, 2)
    x = torch.tensor([[[[1.0, 0.0], [0.5, 1.0]]], [[[0.0, 1.0], [0.2, 0.7]]]])
    terms = [_bce(float(a), float(b)) for a, b in zip(logits.flatten(), x.flatten())]
    paper, code = build(faces, reduction="paper"), build(faces, reduction="code")
    assert math.isclose(float(paper.rec_loss(logits, x)), sum(terms) / 8, rel_tol=1e-5)
    assert math.isclose(float(code.rec_loss(logits, x)), sum(terms) / 4, rel_tol=1e-5)  # Σ / (H·W)
    mu, logvar = torch.tensor([[1.0, 0.0, -2.0], [0.5, 0.5, 0.0]]), torch.tensor([[0.0, 1.0, -1.0], [0.2, 0.0, 0.0]])
    kl = [0.5 * (m * m + math.exp(v) - 1 - v) for m, v in zip(mu.flatten().tolist(), logvar.flatten().tolist())]
    assert math.isclose(float(paper.kl_loss(mu, logvar)), sum(kl) / 6, rel_tol=1e-5)
    assert math.isclose(float(code.kl_loss(mu, logvar)), sum(kl) / 3, rel_tol=1e-5)  # Σ over batch, / nz


def test_class_and_aux_losses_are_mean_bce(faces):
    model = build(faces)
    logits, y = torch.tensor([[0.3, -2.0], [1.5, 0.1]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expect = sum(_bce(float(a), float(b)) for a, b in zip(logits.flatten(), y.flatten())) / 4
    assert math.isclose(float(model.class_loss(logits, y)), expect, rel_tol=1e-5)
    assert math.isclose(float(model.aux_loss(logits, y)), expect, rel_tol=1e-5)


def test_gan_losses_by_hand(faces):
    real, rec, prior = torch.tensor([2.0, -0.5]), torch.tensor([0.1, -1.0]), torch.tensor([1.0, 0.0])
    r = [_bce(float(v), 1) for v in real]
    f_rec, f_pri = [_bce(float(v), 0) for v in rec], [_bce(float(v), 0) for v in prior]
    g_rec, g_pri = [_bce(float(v), 1) for v in rec], [_bce(float(v), 1) for v in prior]
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    paper = build(faces, reduction="paper", g_loss="minimax")
    # §3.1: L_gan = ⅓[bce(1, C(x)) + bce(0, C(x̂)) + bce(0, C(D(z, y)))]
    assert math.isclose(float(paper.gan_d_loss(real, rec, prior)), (mean(r) + mean(f_rec) + mean(f_pri)) / 3, rel_tol=1e-5)
    # eqs. 3–4: the decoder and encoder minimise −δ L_gan (the C(x) term is constant for them)
    assert math.isclose(float(paper.gan_g_loss(rec, prior)), -(mean(f_rec) + mean(f_pri)) / 3, rel_tol=1e-5)
    nonsat = build(faces, reduction="paper", g_loss="nonsaturating")
    assert math.isclose(float(nonsat.gan_g_loss(rec, prior)), (mean(g_rec) + mean(g_pri)) / 3, rel_tol=1e-5)
    minimax_code = build(faces, reduction="code", g_loss="minimax")
    assert math.isclose(float(minimax_code.gan_g_loss(rec, prior)), -0.3 * (sum(f_rec) + sum(f_pri)), rel_tol=1e-5)
    code = build(faces, reduction="code", g_loss="nonsaturating")  # the authors' 0.3 / 0.5 of sums
    assert math.isclose(float(code.gan_d_loss(real, rec, prior)), 0.3 * (sum(r) + sum(f_rec) + sum(f_pri)), rel_tol=1e-5)
    assert math.isclose(float(code.gan_g_loss(rec, prior)), 0.5 * (sum(g_rec) + sum(g_pri)), rel_tol=1e-5)


def test_the_autoencoder_loss_is_eq_6_assembled(faces):
    model = build(faces, alpha_kl=0.2, rho=0.1, delta_gan=0.1, lambda_aux=1.0, beta_rec_class=0.5, reduction="paper",
                  aux_objective="maximise").train()
    batch = faces.get_batch(np.arange(6))
    x, y = batch["image"], model.labels(batch)
    torch.manual_seed(1)
    f = model.forward_pass(x, y)
    parts = model.autoencoder_loss(x, y, f)
    expect = (parts["rec"] + 0.2 * parts["kl"] + 0.1 * parts["class"] - 1.0 * parts["aux_enc"]
              + 0.5 * parts["class_rec"] + 0.1 * parts["gan_g"])
    torch.testing.assert_close(parts["autoencoder"], expect)
    torch.testing.assert_close(parts["rec"], F.binary_cross_entropy_with_logits(f["rec_logits"], x))
    # the class loss on x̂ reads E_y of the reconstruction, the G side C of x̂ and of D(z, y)
    x_hat, x_prior = torch.sigmoid(f["rec_logits"]), torch.sigmoid(f["prior_logits"])
    torch.testing.assert_close(parts["class_rec"], F.binary_cross_entropy_with_logits(model.encoder(x_hat)[2], y))
    d_rec, d_prior = model.discriminator(x_hat), model.discriminator(x_prior)
    # non-saturating (the fast preset), means: ⅓[−log σ(C(x̂)) − log σ(C(D(z, y)))]
    torch.testing.assert_close(parts["gan_g"], (F.softplus(-d_rec).mean() + F.softplus(-d_prior).mean()) / 3)


# --- the adversarial game on ẑ ----------------------------------------------------------------


@pytest.mark.parametrize("aux_input", ["same", "fresh", "mean"])
def test_encoder_gradient_from_l_aux_opposes_the_adversary(faces, aux_input):
    model = build(faces, delta_gan=0.0, aux_input=aux_input, aux_objective="maximise").train()
    batch = faces.get_batch(np.arange(16))
    x, y = batch["image"], model.labels(batch)
    torch.manual_seed(0)
    f = model.forward_pass(x, y)
    enc = list(model.encoder.parameters())

    def grads(loss):
        return torch.autograd.grad(loss, enc, retain_graph=True, allow_unused=True)

    with_aux = grads(model.autoencoder_loss(x, y, f)["autoencoder"])
    model.config.lambda_aux = 0.0
    without = grads(model.autoencoder_loss(x, y, f)["autoencoder"])
    l_aux = model.aux_loss(model.aux(f["z_aux"]), y)
    d_aux = grads(l_aux)
    # eq. 6: the encoder's gradient from its L_aux term is −∇φ L_aux, the adversary descends +∇ L_aux
    moved = 0
    for a, b, g in zip(with_aux, without, d_aux):
        if g is None:
            continue
        torch.testing.assert_close(a - b, -g, rtol=1e-4, atol=1e-6)
        moved += int(g.abs().sum() > 0)
    assert moved > 0
    # and the two updates pull L_aux in opposite directions: A_ψ's step lowers it, φ's raises it
    z = f["z_aux"].detach()
    before = float(l_aux.detach())
    opt = players(model)
    model.aux_step(y, {"z_aux": z}, opt)
    assert float(model.aux_loss(model.aux(z), y).detach()) < before
    with torch.no_grad():
        for p, a, b in zip(enc, with_aux, without):
            if a is not None:
                p -= 1e-3 * (a - b)  # a small step on the encoder's L_aux term alone
    z_after = model.encoder(x)[0] if aux_input == "mean" else f["z_aux"].detach()  # noise fixed: only μ, σ move
    if aux_input != "mean":
        mu, logvar, _ = model.encoder(x)
        eps = (f["z_aux"].detach() - f["mu"].detach()) / torch.exp(0.5 * f["logvar"].detach())
        z_after = mu + torch.exp(0.5 * logvar) * eps
    assert float(model.aux_loss(model.aux(z_after), y).detach()) > float(model.aux_loss(model.aux(z), y).detach())


# --- one method per player --------------------------------------------------------------------


def _owner(model):
    out = {}
    for prefix, module in model.named_children():
        for n, _ in module.named_parameters():
            out[f"{prefix}.{n}"] = prefix
    return out


@pytest.mark.parametrize("kw", [{}, {"arch": "resnet"}, {"c_labels": "projection"}, {"lambda_fm": 1.0, "arch": "resnet"}])
def test_each_player_step_changes_only_its_parameters(faces, kw):
    model = build(faces, **kw).train()
    opt = players(model)
    assert list(opt.optimizers) == ["autoencoder", "aux", "discriminator"]  # the code's order
    own = {"autoencoder": {"encoder", "decoder"}, "aux": {"aux"}, "discriminator": {"discriminator"}}
    owner, changed_by, real_step = _owner(model), {}, opt.step

    def spy(name, loss, **k):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        real_step(name, loss, **k)
        changed_by[name] = {owner[n] for n, p in model.named_parameters() if not torch.equal(before[n], p)}

    opt.step = spy
    losses = model.train_step(faces.get_batch(np.arange(8)), 0, opt)
    assert list(changed_by) == ["autoencoder", "aux", "discriminator"]
    for name, changed in changed_by.items():
        assert changed == own[name], (name, changed)
    assert {"rec", "kl", "class", "aux_enc", "gan_g", "aux", "discriminator"} <= set(losses)
    assert all(not v.requires_grad for v in losses.values())


def test_without_l_gan_there_is_no_discriminator(faces):
    model = build(faces, delta_gan=0.0)
    assert not hasattr(model, "discriminator") and list(model.configure_optimizers()) == ["autoencoder", "aux"]
    losses = model.train().train_step(faces.get_batch(np.arange(4)), 0, players(model))
    assert "gan_g" not in losses and "discriminator" not in losses


# --- switches where paper and code differ -----------------------------------------------------


def test_discriminator_rmsprop_settings(faces):
    code = build(faces, d_rmsprop="code").configure_optimizers()["discriminator"].defaults
    paper = build(faces, d_rmsprop="paper").configure_optimizers()["discriminator"].defaults
    assert (code["alpha"], code["momentum"]) == (0.9, 0)  # the code's "momentum" flag lands on α
    assert (paper["alpha"], paper["momentum"]) == (0.99, 0.5)  # §4.4: momentum 0.5


def test_y_head_detached_keeps_the_class_loss_off_the_trunk_and_decoder(faces):
    batch = faces.get_batch(np.arange(6))
    for head, reaches in (("trunk", True), ("detached", False)):
        model = build(faces, y_head=head, beta_rec_class=1.0).train()
        x, y = batch["image"], model.labels(batch)
        f = model.forward_pass(x, y)
        trunk = list(model.encoder.conv.parameters())
        g = torch.autograd.grad(model.class_loss(f["y_logits"], y), trunk, allow_unused=True)
        assert any(t is not None and t.abs().sum() > 0 for t in g) == reaches, head
        # the class loss on x̂ (Table 1 row 3) reaches the decoder only through a trunk head
        parts = model.autoencoder_loss(x, y, f)
        g = torch.autograd.grad(parts["class_rec"], list(model.decoder.parameters()), allow_unused=True)
        assert any(t is not None and t.abs().sum() > 0 for t in g) == reaches, head


def test_aux_input_same_fresh_or_mean(faces):
    batch = faces.get_batch(np.arange(5))
    x = batch["image"]
    for kind in ("same", "fresh", "mean"):
        model = build(faces, aux_input=kind).eval()
        y = model.labels(batch)
        torch.manual_seed(0)
        f = model.forward_pass(x, y)
        torch.manual_seed(0)
        mu, logvar, _ = model.encoder(x)
        z_same = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # the first draw: the reconstruction's
        if kind == "mean":
            torch.testing.assert_close(f["z_aux"], mu)
        elif kind == "same":
            torch.testing.assert_close(f["z_aux"], z_same)
        else:
            assert not torch.allclose(f["z_aux"], z_same) and not torch.allclose(f["z_aux"], mu)


def test_prior_code_batch_decodes_the_previous_images_code_with_this_images_labels(faces):
    """``prior_code=batch``: C's third source is D(y_i, ẑ_(i−1)), the reconstruction's own draws rolled by one
    image and detached (the decoder learns from it, the encoder does not); ``normal`` draws N(0, I)."""
    batch = faces.get_batch(np.arange(5))
    x = batch["image"]
    model = build(faces, prior_code="batch").eval()
    y = model.labels(batch)
    torch.manual_seed(0)
    f = model.forward_pass(x, y)
    torch.manual_seed(0)
    mu, logvar, _ = model.encoder(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    torch.testing.assert_close(f["prior_logits"], model.decoder(torch.cat([y, z[[4, 0, 1, 2, 3]]], 1)))
    grads = torch.autograd.grad(f["prior_logits"].sum(), [*model.encoder.parameters(), *model.decoder.parameters()],
                                allow_unused=True)
    n_enc = len(list(model.encoder.parameters()))
    assert all(g is None or not g.any() for g in grads[:n_enc])  # no gradient into the encoder
    assert any(g is not None and g.abs().sum() > 0 for g in grads[n_enc:])
    normal = build(faces).eval()
    torch.manual_seed(0)
    fn = normal.forward_pass(x, y)
    assert not torch.allclose(fn["prior_logits"], normal.decoder(torch.cat([y, z[[4, 0, 1, 2, 3]]], 1)))


def test_presets_paper_is_table_1_with_the_codes_switches_and_cvae_gan_drops_l_aux(faces):
    info = faces.info
    paper = fk.models.build("ifcvae-gan", info, preset="paper").config
    assert (paper.rho, paper.delta_gan, paper.alpha_kl, paper.lambda_aux) == (0.1, 0.1, 0.2, 1.0)
    assert paper.attributes == ("Smiling",) and (paper.z_dim, paper.width) == (100, 64)
    assert (paper.reduction, paper.g_loss, paper.y_head, paper.aux_input, paper.d_rmsprop) == \
        ("code", "nonsaturating", "detached", "fresh", "code")
    assert (paper.aux_objective, paper.edit_output) == ("maximise", "decoded")  # eq. 6 and the decoder's image
    for preset in ("fast", "paper"):
        c = fk.models.build("cvae-gan", info, preset=preset).config
        assert (c.lambda_aux, c.decoder_y, c.beta_rec_class) == (0.0, "label", 1.0)


def test_decoder_y_label_decodes_the_true_label_in_training(faces):
    batch = faces.get_batch(np.arange(6))
    model = build(faces, name="cvae-gan").train()
    y = model.labels(batch)
    torch.manual_seed(0)
    f = model.forward_pass(batch["image"], y)
    torch.manual_seed(0)
    mu, logvar, _ = model.encoder(batch["image"])
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    torch.testing.assert_close(f["rec_logits"], model.decoder(torch.cat([y, z], 1)))


# --- editing and operations -------------------------------------------------------------------


def test_edit_with_the_encoders_own_y_hat_is_the_reconstruction(faces):
    model = build(faces).eval()
    x = faces.images_at(np.arange(6))
    code = model.encode(x)
    rec = model.reconstruct(x)
    with torch.no_grad():  # the code is [ŷ, μ], in the order the decoder was trained on
        mu, _, y_logits = model.encoder(x)
        torch.testing.assert_close(rec, torch.sigmoid(model.decoder(torch.cat([torch.sigmoid(y_logits), mu], 1))))
    for a in model.edit_attributes():
        torch.testing.assert_close(model.edit(x, a, value=code[a][:, 0]), rec)
    flipped = model.edit(x, "Smiling", 1.0)
    by_hand = model.decode(code.with_part("Smiling", torch.ones(6, 1)))
    torch.testing.assert_close(flipped, by_hand)
    # use_mean=False samples ẑ (the authors' code): a different image, the same shape
    torch.manual_seed(0)
    sampled = model.edit(x, "Smiling", 1.0, use_mean=False)
    assert sampled.shape == flipped.shape and not torch.allclose(sampled, flipped)


def test_edit_range_reaches_past_the_two_modes_and_the_edit_decodes_there(faces):
    model = build(faces).eval()
    assert model.edit_range("Smiling") == (-1.0, 2.0)  # the editor's slider spans the measured strengths
    x = faces.images_at(np.arange(6))
    code = model.encode(x)
    for v in model.edit_range("Smiling"):
        torch.testing.assert_close(model.edit(x, "Smiling", v), model.decode(code.with_part("Smiling", torch.full((6, 1), v))))
    assert not torch.allclose(model.edit(x, "Smiling", 2.0), model.edit(x, "Smiling", 1.0))


def test_one_attribute_model_edits_only_it(faces):
    model = build(faces, attributes=("Smiling",)).eval()
    assert model.edit_attributes() == ["Smiling"] and model.encode(faces.images_at([0])).tensor.shape == (1, 7)
    with pytest.raises(UsageError, match="trained to edit Smiling, not 'Bangs'"):
        model.edit(faces.images_at([0]), "Bangs", 1.0)
    with pytest.raises(UsageError, match="unknown attribute|valid"):
        build(faces, attributes=("Dimples",))


def test_unsupported_operations_and_data_raise(faces):
    model = build(faces).eval()
    x = faces.images_at(np.arange(2))
    with pytest.raises(UnsupportedOperation, match="does not support 'swap'"):
        model.swap(x, x, [0])
    with pytest.raises(UnsupportedOperation, match="does not support 'sample'"):
        model.sample(2)
    with pytest.raises(UsageError, match="unknown option"):
        model.edit(x, "Smiling", 1.0, chunks=[0])
    with pytest.raises(UsageError, match="needs binary attributes; shapes2d has no attributes"):
        fk.models.build("ifcvae-gan", fk.data.describe("shapes2d"))
    with pytest.raises(UsageError, match="needs binary attributes; sklearn-digits has classes"):
        fk.models.build("ifcvae-gan", fk.data.describe("sklearn-digits"))


def test_training_lowers_the_reconstruction_error(faces):
    model = build(faces, width=8, z_dim=8)
    x = faces.images_at(np.arange(len(faces)))

    def mse():
        model.eval()
        return float(((model.reconstruct(x) - x) ** 2).mean())

    before = mse()
    model.train()
    rng = np.random.default_rng(0)
    opt = players(model)
    for step in range(150):
        model.train_step(faces.get_batch(rng.choice(len(faces), 16, replace=False)), step, opt)
    assert mse() < 0.7 * before, (before, mse())  # measured: 0.0465 → 0.0296


def test_cli_train_evaluate_edit_and_report_on_what_the_model_edits(tmp_path, capsys):
    import json
    import re

    from factorkit.cli import main

    out = tmp_path / "ifc"
    tiny = ["--set", "model.width=4", "--set", "model.z_dim=6", "--set", "model.aux_hidden=8", "--set", "data.size=2000",
            "--set", "model.attributes=Smiling", "--batch-size", "8", "--num-workers", "0", "--quiet"]
    assert main(["train", "ifcvae-gan", "--data", "faces", "--steps", "4", "--out", str(out), *tiny]) == 0
    assert main(["evaluate", str(out), "--metrics", "mse,counterfactual", "--json"]) == 0
    capsys.readouterr()
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert {k.split(".")[1] for k in m if k.startswith("counterfactual.")} - {"gain"} == {"Smiling"}  # only what it edits
    assert main(["evaluate", str(out), "--metrics", "counterfactual", "--attributes", "Bangs"]) == 2
    assert "attribute 'Bangs': ifcvae-gan edits only Smiling" in capsys.readouterr().err
    ds = fk.data.load("faces", "test", size=2000)
    png = tmp_path / "face.png"
    from PIL import Image

    Image.fromarray((ds[0]["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(png)
    assert main(["edit", str(out), "--image", str(png), "--attribute", "Smiling", "--value", "0", "--out", str(tmp_path / "e.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "e.png")).shape == (64, 64, 3)
    assert main(["edit", str(out), "--image", str(png), "--attribute", "Bangs", "--value", "1", "--out", str(tmp_path / "b.png")]) == 2
    assert "trained to edit Smiling" in capsys.readouterr().err and not (tmp_path / "b.png").exists()
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    titles = re.findall(r"<section><h2>(.*?)</h2>", page)
    assert "Attribute flips" in titles and "Edits across intensities" in titles
    assert "<h3>Bangs</h3>" not in page and "<h3>Smiling</h3>" in page


def test_flip_grid_has_input_reconstruction_and_both_modes_per_attribute(faces):
    from factorkit.viz import grids

    model = build(faces).eval()
    x = faces.images_at(np.arange(3))
    g = grids.flip_grid(model, x, ["Smiling", "Bangs"])
    pad = 2
    assert g.shape == (3, 3 * 64 + 4 * pad, 6 * 64 + 7 * pad)  # 3 rows; input, recon, 2 × (0, 1)
    cell = lambda r, c: g[:, pad + r * (64 + pad): pad + r * (64 + pad) + 64, pad + c * (64 + pad): pad + c * (64 + pad) + 64]  # noqa: E731
    torch.testing.assert_close(cell(1, 3), model.edit(x, "Smiling", 1.0)[1])
    torch.testing.assert_close(cell(2, 4), model.edit(x, "Bangs", 0.0)[2])


def test_resume_is_bit_identical_with_three_players(tmp_path):
    train = fk.data.load("faces", "train", size=2000)
    kw = {"batch_size": 8, "num_workers": 0, "checkpoint_every": 3, "log_every": 1, "image_every": 0}

    def run(out, steps, resume=False):
        model = build(train, aux_input="fresh")
        fk.train(model, train, steps=steps, out=tmp_path / out, resume=resume, progress=False, **kw)
        return model

    full = run("full", 6)
    run("part", 3)
    resumed = run("part", 6, resume=True)
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


def test_the_discriminator_sees_each_source_as_its_own_batch(faces):
    """With arch=resnet C has BatchNorm: real, reconstructed and prior images must not share a batch."""
    model = build(faces, arch="resnet").train()
    seen = []
    model.discriminator.register_forward_pre_hook(lambda mod, args: seen.append(len(args[0])))
    model.train_step(faces.get_batch(np.arange(6)), 0, players(model))
    assert seen == [6] * 5  # G side: x̂, D(z, y); C's step: x, x̂, D(z, y)


def test_c_labels_projection_reads_the_batch_labels_in_every_source(faces):
    """C(x, y) = w·φ(x) + b + (V s)·φ(x), s = 2y − 1 (Miyato & Koyama), by hand; C's step and the
    decoder's GAN term both read the batch's labels, so flipping them changes both losses."""
    model = build(faces, c_labels="projection", attributes=("Smiling", "Bangs")).train()
    d = model.discriminator
    assert not hasattr(build(faces).discriminator, "projection")
    with torch.no_grad():
        d.projection.weight.normal_()
    x = faces.images_at(np.arange(4))
    y = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    with torch.no_grad():
        phi = d.net[:-1](x)
        head, v = d.net[-1], d.projection.weight  # v: (flat, 2)
        by_hand = [float(head.weight[0] @ phi[i] + head.bias[0]
                         + sum((2 * y[i, j] - 1) * (v[:, j] @ phi[i]) for j in range(2))) for i in range(4)]
        assert d(x, y).tolist() == pytest.approx(by_hand, rel=1e-4, abs=1e-4)
        assert not torch.allclose(d(x, y), d(x, 1 - y))
    batch = faces.get_batch(np.arange(8))
    flipped = {**batch, "attributes": 1 - batch["attributes"]}
    y8, y8f = model.labels(batch), model.labels(flipped)
    torch.manual_seed(0)
    f = model.forward_pass(batch["image"], y8)
    with torch.no_grad():
        g, g_flip = (model.autoencoder_loss(batch["image"], t, f)["gan_g"] for t in (y8, y8f))
    assert float(g) != pytest.approx(float(g_flip))
    seen = []
    d.register_forward_pre_hook(lambda mod, args: seen.append(args[1]))
    model.discriminator_step(batch["image"], y8, f, players(model))
    assert len(seen) == 3 and all(torch.equal(t, y8) for t in seen)  # real, x̂, D(z', y)


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_feature_matching_is_the_l1_between_cs_layers_on_the_reconstruction_and_the_input(faces, arch):
    model = build(faces, arch=arch, lambda_fm=0.5).train()
    d = model.discriminator
    x, y = faces.images_at(np.arange(4)), model.labels(faces.get_batch(np.arange(4)))
    # C's layers by hand: the output of every activation and residual block of its conv trunk
    hand, h = [], x
    for layer in d.net[:-2]:
        h = layer(h)
        if isinstance(layer, (torch.nn.ReLU, fk.nn.blocks.ResidualBlock)):
            hand.append(h)
    logit, feats = d(x, y, features=True)
    assert len(feats) == (8 if arch == "resnet" else 4)
    torch.testing.assert_close(logit, d(x, y))
    for a, b in zip(feats, hand):
        torch.testing.assert_close(a, b)
    torch.manual_seed(0)
    f = model.forward_pass(x, y)
    rec = torch.sigmoid(f["rec_logits"])
    expect = sum(float((a - b).abs().mean()) for a, b in zip(d(rec, y, features=True)[1], d(x, y, features=True)[1]))
    with_fm = model.autoencoder_loss(x, y, f)
    assert math.isclose(float(with_fm["fm"]), expect, rel_tol=1e-5) and expect > 0
    model.config.lambda_fm = 0.0
    without = model.autoencoder_loss(x, y, f)
    assert "fm" not in without
    assert math.isclose(float(with_fm["autoencoder"] - without["autoencoder"]), 0.5 * expect, rel_tol=1e-4)
    # its gradient reaches the decoder
    model.zero_grad()
    with_fm["fm"].backward(retain_graph=True)
    assert model.decoder.fc[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kw", [{"c_labels": "projection"}, {"prior_code": "batch"}, {"lambda_fm": 1.0}])
def test_switches_of_c_are_refused_without_c(faces, kw):
    (name, value), = kw.items()
    with pytest.raises(UsageError, match=f"model.{name}={value}.*delta_gan=0"):
        build(faces, delta_gan=0.0, **kw)
    build(faces, delta_gan=0.005, **kw)  # with C they are taken


def test_yhat_accuracy_reads_the_models_own_attribute_units(faces):
    from factorkit.metrics.editing import yhat_accuracy

    model = build(faces, attributes=("Bangs", "Smiling")).eval()
    rows = np.arange(12)
    read = yhat_accuracy(model, faces, rows, batch=5)
    assert list(read) == ["Bangs", "Smiling"]
    y_hat = model.encode(faces.images_at(rows))["y"].detach()
    labels = faces.attribute_array()[rows] > 0.5
    for j, a in enumerate(("Bangs", "Smiling")):
        truth = labels[:, faces.info.attribute_index(a)]
        assert read[a]["accuracy"] == pytest.approx(float(np.mean((y_hat[:, j].numpy() > 0.5) == truth)))
        assert read[a]["majority"] == pytest.approx(max(truth.mean(), 1 - truth.mean()))


def with_output(faces, edit_output):
    """(a model with the papers' decoded edits, the same weights returning edits as ``edit_output``)."""
    decoded = build(faces).eval()
    other = build(faces, edit_output=edit_output).eval()
    other.load_state_dict(decoded.state_dict())
    return decoded, other


def test_residual_edit_output_is_the_input_plus_the_decoders_change(faces):
    decoded, residual = with_output(faces, "residual")
    x = faces.images_at(np.arange(6))
    code, rec = decoded.encode(x), decoded.reconstruct(x)
    for a in residual.edit_attributes():  # ŷ set to the encoder's own ŷ changes nothing: the input comes back
        torch.testing.assert_close(residual.edit(x, a, value=code[a][:, 0]), x)
    by_hand = (x + decoded.edit(x, "Smiling", 1.0) - rec).clamp(0, 1)
    torch.testing.assert_close(residual.edit(x, "Smiling", 1.0), by_hand)
    many = (x + decoded.edit_many(x, {"Smiling": 0.0, "Bangs": 1.0}) - rec).clamp(0, 1)
    torch.testing.assert_close(residual.edit_many(x, {"Smiling": 0.0, "Bangs": 1.0}), many)
    assert not torch.allclose(residual.edit(x, "Smiling", 1.0), decoded.edit(x, "Smiling", 1.0))


def test_masked_edit_output_weighs_the_change_by_its_own_blurred_magnitude(faces):
    decoded, masked = with_output(faces, "masked")
    x = faces.images_at(np.arange(4))
    code, rec = decoded.encode(x), decoded.reconstruct(x)
    change = decoded.edit(x, "Smiling", 2.0) - rec
    # by hand: |change| summed over channels, a separable Gaussian (σ = 1.5 px, radius 4, edges
    # replicated) as a 9 × 9 convolution, then over each image's largest value
    t = torch.arange(-4, 5, dtype=torch.float32)
    g = torch.exp(-0.5 * (t / 1.5) ** 2)
    g = g / g.sum()
    padded = torch.nn.functional.pad(change.abs().sum(1, keepdim=True), (4, 4, 4, 4), mode="replicate")
    blurred = torch.nn.functional.conv2d(padded, (g[:, None] * g[None, :]).view(1, 1, 9, 9))
    m = blurred / blurred.amax((2, 3), keepdim=True)
    torch.testing.assert_close(masked.edit(x, "Smiling", 2.0), (x + m * change).clamp(0, 1))
    assert m.amin() < 0.2 and torch.allclose(m.amax((2, 3)), torch.ones(4, 1))  # the change is faded, not cut
    many = (x + change_mask(decoded.edit_many(x, {"Smiling": 0.0, "Bangs": 1.0}) - rec)
            * (decoded.edit_many(x, {"Smiling": 0.0, "Bangs": 1.0}) - rec)).clamp(0, 1)
    torch.testing.assert_close(masked.edit_many(x, {"Smiling": 0.0, "Bangs": 1.0}), many)
    torch.testing.assert_close(masked.edit(x, "Bangs", value=code["Bangs"][:, 0]), x)  # no change, no NaN: x back


def test_confusion_objective_is_bounded_and_replaces_eq_6s_maximisation(faces):
    logits = torch.tensor([0.0, 2.0, -3.0])
    by_hand = [math.log(2), 0.5 * (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(2.0))),
               0.5 * (math.log1p(math.exp(3.0)) + math.log1p(math.exp(-3.0)))]
    for v, h in zip(logits, by_hand):
        assert adv.confusion_loss(v.view(1)).item() == pytest.approx(h)
    assert adv.confusion_loss(torch.linspace(-50, 50, 101)).item() >= math.log(2)  # bounded below, unlike −L_aux
    model = build(faces, delta_gan=0.0, aux_objective="confuse").train()
    batch = faces.get_batch(np.arange(16))
    x, y = batch["image"], model.labels(batch)
    torch.manual_seed(0)
    f = model.forward_pass(x, y)
    enc = list(model.encoder.parameters())
    grads = lambda loss: torch.autograd.grad(loss, enc, retain_graph=True, allow_unused=True)  # noqa: E731
    with_aux = grads(model.autoencoder_loss(x, y, f)["autoencoder"])
    model.config.lambda_aux = 0.0
    without = grads(model.autoencoder_loss(x, y, f)["autoencoder"])
    confusion = grads(adv.confusion_loss(model.aux(f["z_aux"])))
    moved = 0
    for a, b, g in zip(with_aux, without, confusion):
        if g is not None:
            torch.testing.assert_close(a - b, g, rtol=1e-4, atol=1e-6)  # the encoder descends the confusion loss
            moved += int(g.abs().sum() > 0)
    assert moved > 0
    assert fk.models.build("ifcvae-gan", faces.info, preset="fast").config.aux_objective == "confuse_prior"


def test_without_l_kl_eq_6_blows_up_sigma_and_the_bounded_objective_trains(faces):
    """Table 3's "without L_KL" row (results §11): with nothing holding σ of ẑ, the encoder maximises L_aux
    (eq. 6, unbounded) by blowing up log σ² until the loss is NaN; the fast preset's confusion against the
    labels' marginal (the "bounded L_aux" row) keeps it finite. The row's overrides on the fast preset, as the
    benchmark builds it."""
    row = dict(reduction="code", g_loss="nonsaturating", aux_input="fresh", attributes=("Smiling",), arch="resnet",
               rho=0.1, delta_gan=0.005, alpha_kl=0.0, d_rmsprop="paper")
    peaks = {}
    for objective in ("maximise", "confuse_prior"):
        model = fk.models.build("ifcvae-gan", faces, seed=0, **{**row, "aux_objective": objective}).train()
        opt, peaks[objective] = players(model), []
        torch.manual_seed(0)
        try:
            for step in range(6):
                batch = faces.get_batch((np.arange(16) + 6 * step) % len(faces))
                model.train_step(batch, step, opt)
                with torch.no_grad():
                    peaks[objective].append(model.encoder(batch["image"])[1].max().item())
        except NonFiniteLoss:
            peaks[objective].append(math.nan)
    assert max(peaks["maximise"][:2]) > 100 and math.isnan(peaks["maximise"][-1])  # 1e2 after two steps, then NaN
    assert len(peaks["confuse_prior"]) == 6 and max(peaks["confuse_prior"]) < 50


def test_confusion_against_the_marginal_leaves_a_blind_adversary_alone(faces):
    p = torch.tensor([0.5, 0.1, 0.08])
    logits = torch.tensor([[0.3, -1.0, 2.0]])
    by_hand = sum(-(pi * math.log(1 / (1 + math.exp(-a))) + (1 - pi) * math.log(1 - 1 / (1 + math.exp(-a))))
                  for pi, a in zip(p.tolist(), logits[0].tolist())) / 3
    assert adv.confusion_loss(logits, p).item() == pytest.approx(by_hand)
    # an adversary that reads nothing outputs the marginal: against p the gradient there is 0, against ½ it is not
    blind = torch.logit(p).view(1, 3).requires_grad_()
    assert torch.autograd.grad(adv.confusion_loss(blind, p), blind)[0].abs().max() < 1e-7
    assert torch.autograd.grad(adv.confusion_loss(blind), blind)[0][0, 1:].abs().min() > 0.05
    assert adv.confusion_loss(blind, p).item() == pytest.approx(
        float(-(p * p.log() + (1 - p) * (1 - p).log()).mean()), rel=1e-6)  # its minimum is H(p), not log 2

    model = build(faces, delta_gan=0.0, aux_objective="confuse_prior").train()
    opt = players(model)
    seen = []
    for step in range(3):  # three batches of 7 of the 22 test faces
        batch = faces.get_batch(np.arange(7 * step, 7 * step + 7))
        seen.append(model.labels(batch))
        model.train_step(batch, step, opt)
    y = torch.cat(seen)
    torch.testing.assert_close(model.label_prior(), (y.sum(0) + 1) / (len(y) + 2))
    assert {"label_sum", "label_count"} <= set(model.state_dict())  # saved with the weights: exact resume
    batch = faces.get_batch(np.arange(16))
    x, yb = batch["image"], model.labels(batch)
    f = model.forward_pass(x, yb)
    assert model.autoencoder_loss(x, yb, f)["aux_enc"].item() == pytest.approx(
        adv.confusion_loss(model.aux(f["z_aux"]), model.label_prior()).item())
    assert "label_sum" not in build(faces, delta_gan=0.0, aux_objective="confuse").state_dict()
