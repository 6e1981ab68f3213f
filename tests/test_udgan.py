"""UD-GAN / UD-GAN-G (issue 19): the quadruple of eq. 2, the contrastive loss and its adaptive
margin against hand computations, the guidance functions on hand-drawn images, gradient through
φ into G, each player's step; and the DIP-VAE and InfoGAN baselines."""

import numpy as np
import pytest
import torch

from factorkit.cli import main
from factorkit.errors import UnsupportedOperation, UsageError
from factorkit.models import registry as R
from factorkit.models.dipvae import covariance, dip_covariance, dip_penalty
from factorkit.models.infogan import info_loss
from factorkit.models.udgan import contrastive_loss, quadruple_codes
from factorkit.nn import guidance as G
from factorkit.train.distributed import Dist
from factorkit.train.trainer import Players
from tests.toy import tiny_dataset


def build(name="udgan", size=16, **overrides):
    ds = tiny_dataset(n=48, size=size)
    return R.build(name, ds, width=8, **overrides), ds


# --- eq. 2: the quadruple, the loss, the margin -----------------------------------------------------


def test_quadruples_share_knob_i_exactly_where_eq_2_says():
    torch.manual_seed(0)
    q1, q2 = torch.rand(5, 6) * 2 - 1, torch.rand(5, 6) * 2 - 1
    i, rest = 2, [0, 1, 3, 4, 5]
    c = quadruple_codes(q1, q2, i)
    # x_ab = G([q_i^(a), q_ī^(b)]): the similar pairs (11, 12) and (21, 22) share q_i …
    assert torch.equal(c["11"][:, i], q1[:, i]) and torch.equal(c["12"][:, i], q1[:, i])
    assert torch.equal(c["21"][:, i], q2[:, i]) and torch.equal(c["22"][:, i], q2[:, i])
    # … and the other knobs come from q^(b)
    assert torch.equal(c["11"][:, rest], q1[:, rest]) and torch.equal(c["21"][:, rest], q1[:, rest])
    assert torch.equal(c["12"][:, rest], q2[:, rest]) and torch.equal(c["22"][:, rest], q2[:, rest])
    assert not torch.equal(c["11"][:, i], c["21"][:, i])  # the dissimilar pairs differ in q_i


def test_contrastive_loss_and_adaptive_margin_equal_hand_computations():
    # one quadruple, 1-D embeddings: φ(x11)=0.0, φ(x12)=0.1, φ(x21)=0.5, φ(x22)=0.2
    emb = {k: torch.tensor([[v]]) for k, v in {"11": 0.0, "12": 0.1, "21": 0.5, "22": 0.2}.items()}
    model, _ = build()
    q1, q2 = torch.zeros(1, 10), torch.zeros(1, 10)
    q1[0, 3], q2[0, 3] = -0.2, 0.4
    margin = model.margin(q1, q2, 3)
    assert margin.item() == pytest.approx(0.6)  # γ = |q_3^(1) − q_3^(2)|
    similar = 0.5 * (0.1**2 + 0.3**2)
    # dissimilar pairs (1n, 2m): ρ = 0.5, 0.2, 0.4, 0.1 → max(0, 0.6 − ρ)² = 0.01, 0.16, 0.04, 0.25
    dissimilar = 0.25 * (0.1**2 + 0.4**2 + 0.2**2 + 0.5**2)
    assert contrastive_loss(emb, margin).item() == pytest.approx(similar + dissimilar, abs=1e-6)
    # a margin smaller than every distance leaves only the similar term
    assert contrastive_loss(emb, torch.tensor([0.05])).item() == pytest.approx(similar, abs=1e-6)
    fixed, _ = build(margin="fixed", margin_value=0.3)
    assert fixed.margin(q1, q2, 3).item() == pytest.approx(0.3)


def test_contrastive_loss_is_a_batch_mean_of_the_per_quadruple_losses():
    torch.manual_seed(1)
    emb = {k: torch.randn(4, 3) for k in ("11", "12", "21", "22")}
    margin = torch.rand(4)
    each = [contrastive_loss({k: v[j : j + 1] for k, v in emb.items()}, margin[j : j + 1]) for j in range(4)]
    assert contrastive_loss(emb, margin).item() == pytest.approx(float(sum(each)) / 4, abs=1e-6)


# --- guidance functions -------------------------------------------------------------------------------


def test_moments_of_hand_drawn_images_are_exact():
    one = torch.zeros(1, 1, 8, 8)
    one[0, 0, 2, 5] = 1.0  # row 2, column 5
    torch.testing.assert_close(G.moments(one, eps=0), torch.tensor([[5.0, 2.0, 0.0]]))
    two = torch.zeros(1, 1, 8, 8)
    two[0, 0, 1, 1] = two[0, 0, 1, 5] = 0.5
    # centre (3, 1); each pixel 2 columns away: Ŝ = (2² + 2²) / 2 = 4
    torch.testing.assert_close(G.moments(two, eps=0), torch.tensor([[3.0, 1.0, 4.0]]))
    square = torch.zeros(1, 3, 8, 8)
    square[0, :, 2:4, 4:6] = 1.0  # rows 2–3, columns 4–5, all three channels
    # centre (4.5, 2.5); every pixel 0.5 away in x and y: Ŝ = 0.25 + 0.25
    torch.testing.assert_close(G.moments(square, eps=0), torch.tensor([[4.5, 2.5, 0.5]]))


def test_crops_cover_the_stated_rows():
    x = torch.rand(2, 3, 64, 64) + 0.1
    seen = torch.zeros(64, dtype=torch.int64)
    for band, rows in enumerate([range(0, 16), range(16, 32), range(32, 48), range(48, 64)]):
        assert G.band_rows(64, band) == rows
        kept = G.crop_band(x, band)
        nonzero = (kept != 0).any(0).any(0).any(1)  # rows with anything left
        assert nonzero.nonzero().flatten().tolist() == list(rows)
        torch.testing.assert_close(kept[:, :, rows.start : rows.stop], x[:, :, rows.start : rows.stop])
        seen += nonzero.long()
    assert seen.tolist() == [1] * 64  # four disjoint bands, every row once


def test_sobel_and_average_colour():
    step = torch.zeros(1, 1, 6, 6)
    step[..., 3:] = 1.0  # a vertical edge between columns 2 and 3
    mag = G.sobel_magnitude(step, eps=0)[0, 0]
    assert torch.all(mag[:, [0, 1, 4, 5]] == 0) and torch.all(mag[:, [2, 3]] == 4.0)  # |1+2+1|
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    pixels = torch.tensor([0, 5, 15])
    torch.testing.assert_close(G.average_colour(x, pixels), x.flatten(2)[:, :, [0, 5, 15]].mean(2))


# --- the model: gradients, players, operations -------------------------------------------------------


def test_g_receives_gradient_from_the_siamese_loss():
    for guidance in ("none", "moments", "crops", "avgcolor", "edges"):
        model, _ = build("udgan", guidance=guidance)
        i = model.config.knobs - 1  # a guided knob when there is guidance
        _, fakes, margin = model.quadruple(6, i)
        from factorkit.models.udgan import signed_to_images_unclamped

        emb = model.knob_embedding(signed_to_images_unclamped(fakes), i).chunk(4)
        loss = contrastive_loss(dict(zip(("11", "12", "21", "22"), emb)), margin)
        grads = torch.autograd.grad(loss, list(model.generator.parameters()))
        assert sum(float(g.abs().sum()) for g in grads) > 0, guidance


def _owner(model):
    owner = {}
    for prefix in ("generator", "discriminator", "phi", "guided_phi", "inverter", "features", "d_head", "q_head"):
        if getattr(model, prefix, None) is not None:
            for n, _ in getattr(model, prefix).named_parameters():
                owner[f"{prefix}.{n}"] = prefix
    return owner


def _changed_by_player(model, batch):
    opts = model.configure_optimizers()
    players = Players(opts, {n: None for n in opts}, Dist(), fetch=lambda: batch)
    owner, changed_by, real_step = _owner(model), {}, players.step

    def spy(name, loss, **kw):
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        real_step(name, loss, **kw)
        changed_by[name] = {owner[k] for k, v in model.named_parameters() if not torch.equal(before[k], v)}

    players.step = spy
    losses = model.train_step(batch, 0, players)
    return changed_by, losses


def test_each_player_step_changes_only_its_parameters():
    model, ds = build("udgan-g", guidance="moments")
    changed, losses = _changed_by_player(model.train(), ds.get_batch(np.arange(6)))
    assert list(changed) == ["discriminator", "generator", "inverter"]
    assert changed["discriminator"] == {"discriminator"}
    assert changed["inverter"] == {"inverter"}
    # G and the φ that read knob i move; the other guided φ get no gradient this step
    assert {"generator"} <= changed["generator"] <= {"generator", "phi", "guided_phi"}
    assert set(losses) == {"discriminator", "gan_g", "phi", "generator", "inverter"}
    info, ds = build("infogan")
    changed, _ = _changed_by_player(info.train(), ds.get_batch(np.arange(6)))
    assert changed == {"discriminator": {"features", "d_head", "q_head"}, "generator": {"generator"}}


def test_representation_is_the_siamese_outputs_and_operations():
    model, ds = build("udgan-g", guidance="crops")
    model.eval()  # as fk.load and fk.train leave it: G's BatchNorm (fast preset) then uses running statistics
    x = ds.get_batch(np.arange(5))["image"]
    rep = model.representation(x)
    assert rep.shape == (5, model.config.knobs)
    torch.testing.assert_close(rep[:, :model.n_unguided], model.phi(x))
    torch.testing.assert_close(rep[:, -1:], model.guided_phi[3](G.crop_band(x, 3)))
    code = model.encode(x)
    assert code.tensor.shape == (5, model.config.knobs) and code.tensor.abs().max() <= 1
    assert model.decode(code).shape == x.shape and model.sample(3).shape == (3, 1, 16, 16)
    grid = model.traverse(x[:2], 4, [-1.0, 0.0, 1.0])
    assert grid.shape == (2, 3, 1, 16, 16)
    # the traversal changes knob 4 only: the middle column is the decode of the code with q_4 = 0
    torch.testing.assert_close(grid[:, 1], model.decode(code.with_part("knob4", torch.zeros(5, 1)))[:2])
    assert model.traversal_range(0) == (-1.0, 1.0) and "bottom band" in model.dimension_label(9)
    with pytest.raises(UnsupportedOperation):
        model.edit(x, "a", 1.0)
    with pytest.raises(UnsupportedOperation):
        model.swap(x, x, [0])


def test_refined_inversion_reconstructs_better_than_the_encoder_alone():
    torch.manual_seed(0)
    model, ds = build("udgan", invert_steps=0)
    target = model.sample(4, torch.Generator().manual_seed(1))  # images G can make
    coarse = (model.reconstruct(target) - target).pow(2).mean()
    refined_model, _ = build("udgan", invert_steps=60)
    refined_model.load_state_dict(model.state_dict())
    fine = (refined_model.reconstruct(target) - target).pow(2).mean()
    assert fine < 0.5 * coarse


def test_bad_configurations_are_refused_with_the_numbers():
    with pytest.raises(UsageError, match="guidance=crops steers 4 knobs, so model.knobs must be at least 5"):
        build("udgan", guidance="crops", knobs=4)
    with pytest.raises(UsageError, match=r"4 · 2\^k"):
        R.build("udgan", tiny_dataset(size=12))
    model, ds = build("udgan", inversion="none")
    with pytest.raises(UsageError, match="inversion=none"):
        model.encode(ds.get_batch(np.arange(2))["image"])


def test_udgan_g_picks_its_guidance_by_dataset():
    from factorkit.data import registry as D

    assert R.build("udgan-g", D.describe("shapes2d")).config.guidance == "moments"
    assert R.build("udgan-g", D.describe("faces")).config.guidance == "crops"
    assert R.build("udgan", D.describe("faces")).config.guidance == "none"


def test_a_short_training_run_through_the_cli(tmp_path, capsys):
    out = tmp_path / "ud"
    assert main(["train", "udgan-g", "--data", "sklearn-digits", "--out", str(out), "--steps", "30",
                 "--set", "model.width=8", "--set", "model.knobs=6", "--set", "train.batch_size=8",
                 "--set", "model.guidance=avgcolor", "--quiet"]) == 0
    import factorkit as fk

    model = fk.load(out)
    assert model.config.guidance == "avgcolor" and model.colour_at.shape == (64,)
    # factorkit sample: a grid of draws, and one knob swept on each draw
    from PIL import Image

    assert main(["sample", str(out), "--n", "5", "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size == (3 * 34 + 2, 2 * 34 + 2)  # 32-px digits, 2-px gaps, 3 × 2 cells
    assert main(["sample", str(out), "--n", "2", "--traverse", "5", "--steps", "4", "--out", str(tmp_path / "t.png")]) == 0
    assert Image.open(tmp_path / "t.png").size == (4 * 34 + 2, 2 * 34 + 2)
    strip = np.asarray(Image.open(tmp_path / "t.png"))[2:34]
    assert not np.array_equal(strip[:, 2:34], strip[:, 104:136])  # knob 5 at −1 and +1 differ
    assert main(["sample", str(out), "--traverse", "6", "--out", str(tmp_path / "u.png")]) == 2
    assert "--traverse 6: the code has dimensions 0..5" in capsys.readouterr().err


# --- DIP-VAE ----------------------------------------------------------------------------------------


def test_dip_penalty_is_zero_for_a_unit_diagonal_covariance_and_positive_otherwise():
    assert dip_penalty(torch.eye(4), 10.0, 100.0).item() == 0.0
    assert dip_penalty(torch.diag(torch.tensor([1.0, 1.0, 2.0])), 10.0, 100.0).item() == pytest.approx(100.0)
    off = torch.eye(3)
    off[0, 1] = off[1, 0] = 0.5
    assert dip_penalty(off, 10.0, 100.0).item() == pytest.approx(10.0 * 2 * 0.25)


def test_dip_covariances_equal_numpy():
    torch.manual_seed(0)
    mu, logvar = torch.randn(50, 3, dtype=torch.float64), torch.randn(50, 3, dtype=torch.float64)
    np.testing.assert_allclose(covariance(mu).numpy(), np.cov(mu.numpy().T, bias=True), atol=1e-12)
    np.testing.assert_allclose(dip_covariance(mu, logvar, "ii").numpy(),
                               np.cov(mu.numpy().T, bias=True) + np.diag(logvar.exp().mean(0).numpy()), atol=1e-12)
    model = R.build("dipvae", tiny_dataset(size=64), dip_type="ii")
    assert model.config.lambda_od == 10.0 and model.config.beta == 1.0


# --- InfoGAN ------------------------------------------------------------------------------------------


def test_info_loss_is_half_the_squared_error():
    c, q = torch.tensor([[1.0, -1.0], [0.0, 0.5]]), torch.tensor([[0.0, -1.0], [0.5, 0.5]])
    assert info_loss(c, q).item() == pytest.approx(0.5 * (1.0 + 0.25) / 2)


def test_infogan_q_loss_falls_on_a_toy_problem():
    torch.manual_seed(0)
    model, ds = build("infogan", knobs=3)
    opts = model.configure_optimizers()
    players = Players(opts, {n: None for n in opts}, Dist(), fetch=None)
    first, last = [], []
    for step in range(120):
        losses = model.train_step(ds.get_batch(np.arange(step % 4 * 12, step % 4 * 12 + 12)), step, players)
        (first if step < 10 else last if step >= 110 else []).append(float(losses["info_g"]))
    # the mutual-information bound tightens: Q reads the codes back from G's images
    assert np.mean(last) < 0.5 * np.mean(first), (np.mean(first), np.mean(last))


# --- the web editor: knobs of a real image (inverted), and samples ------------------------------------


def test_web_editor_moves_a_knob_of_an_uploaded_face(tmp_path):
    pytest.importorskip("fastapi")
    import factorkit as fk
    from factorkit.models.base import Code
    from factorkit.serve.app import create_app
    from tests.test_serve import StubJudge, as_png, client, png_bytes, png_of

    faces = fk.data.load("faces", "train", size=240)
    model = fk.models.build("udgan-g", faces, seed=0, width=8, knobs=6)
    fk.train(model, faces, steps=3, out=tmp_path / "udg", batch_size=4, num_workers=0, progress=False,
             checkpoint_every=0, image_every=0)
    c = client(create_app(tmp_path / "udg", judge=StubJudge(fk.data.load("faces", "test", size=240).info)))
    rid = c.get("/api/runs").json()[0]["id"]
    spec = c.get(f"/api/runs/{rid}").json()
    assert spec["sample"] and "edit" not in spec and "swap" not in spec
    labels = [x["label"] for x in spec["traverse"]["controls"]]
    assert len(labels) == 6 and "knob 5, guided: bottom band" in labels[5]
    assert {(x["lo"], x["hi"]) for x in spec["traverse"]["controls"]} == {(-1.0, 1.0)}
    rec = c.post(f"/api/runs/{rid}/images", content=png_bytes(colour="blue")).json()
    model = fk.load(tmp_path / "udg")
    x = torch.from_numpy(png_of(rec["image"]).astype(np.float32) / 255).permute(2, 0, 1)[None]
    assert rec["knobs"] == [round(v, 4) for v in model.encode(x).tensor[0].tolist()]  # the inverted knobs
    r = c.post(f"/api/runs/{rid}/traverse", json={"image": rec["id"], "values": {"5": 0.9}})
    q = model.encode(x).tensor.clone()
    q[0, 5] = 0.9
    assert np.array_equal(png_of(r.json()["image"]), as_png(model.decode(Code(q))[0]))
    out = c.post(f"/api/runs/{rid}/sample", json={"n": 2, "seed": 3}).json()
    assert len(out["images"]) == 2


def test_training_resumes_exactly(tmp_path):
    import factorkit as fk

    ds = tiny_dataset(n=48, size=16)
    kw = {"checkpoint_every": 2, "image_every": 0, "num_workers": 0, "batch_size": 4, "progress": False}
    straight, _ = build("udgan-g", guidance="avgcolor")
    fk.train(straight, ds, steps=4, out=tmp_path / "a", **kw)
    half, _ = build("udgan-g", guidance="avgcolor")
    fk.train(half, ds, steps=2, out=tmp_path / "b", **kw)
    again, _ = build("udgan-g", guidance="avgcolor")
    assert fk.train(again, ds, steps=4, out=tmp_path / "b", resume=True, **kw).resumed_from == 2
    for (k, va), vb in zip(straight.state_dict().items(), again.state_dict().values()):
        assert torch.equal(va, vb), k  # the knob i, the quadruples and D's picks draw from the saved RNG


def test_g_norm_switch_puts_batchnorm_after_every_layer_but_the_last():
    plain, _ = build("udgan", g_norm="none")
    batch, _ = build("udgan", g_norm="batch")
    count = lambda m, t: sum(isinstance(x, t) for x in m.generator.modules())  # noqa: E731
    assert count(plain, torch.nn.BatchNorm2d) == 0 and count(plain, torch.nn.BatchNorm1d) == 0
    convs = count(batch, torch.nn.Conv2d) + count(batch, torch.nn.ConvTranspose2d)
    assert count(batch, torch.nn.BatchNorm1d) == 1 and count(batch, torch.nn.BatchNorm2d) == convs - 1


def test_fast_preset_uses_batchnorm_in_g_and_paper_preset_keeps_table_5():
    ds = tiny_dataset(n=48, size=16)
    for name in ("udgan", "udgan-g", "infogan"):
        fast = R.build(name, ds, preset="fast", width=8)
        paper = R.build(name, ds, preset="paper", width=8)
        assert fast.config.g_norm == "batch" and paper.config.g_norm == "none", name
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.generator.modules())
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in paper.generator.modules())
    assert R.build("infogan", ds, preset="fast", width=8, g_norm="none").config.g_norm == "none"  # the switch wins


def test_residual_edit_output_moves_a_knob_of_a_real_image_as_input_plus_change():
    decoded, ds = build("udgan")
    residual = R.build("udgan", ds, width=8, edit_output="residual")
    residual.load_state_dict(decoded.state_dict())
    decoded.eval(), residual.eval()
    x = ds.get_batch(np.arange(3))["image"]
    rec = decoded.reconstruct(x)
    grid = residual.traverse(x, 2, [-1.0, 1.0])
    torch.testing.assert_close(grid, (x[:, None] + decoded.traverse(x, 2, [-1.0, 1.0]) - rec[:, None]).clamp(0, 1))
    q = decoded.encode(x).tensor.detach()
    torch.testing.assert_close(residual.set_dimensions(x, {2: 0.5}), (x + decoded.set_dimensions(x, {2: 0.5}) - rec).clamp(0, 1))
    # a knob set to its own inverted value changes nothing: the input itself comes back
    torch.testing.assert_close(residual.set_dimensions(x[:1], {2: float(q[0, 2])}), x[:1])
    assert decoded.sample(2).shape == residual.sample(2).shape  # samples are untouched by the switch
