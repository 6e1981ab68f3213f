import numpy as np
import pytest
import torch

import factorkit as fk
from factorkit.errors import UsageError
from factorkit.models.base import images_to_signed
from factorkit.models.mixing import TERMS, Decoder, Encoder, chunk_mask, mix
from factorkit.train.distributed import Dist
from factorkit.train.trainer import Players

TINY = {"num_chunks": 4, "chunk_size": 3, "width": 0.125, "cls_width": 0.05}


@pytest.fixture(scope="module")
def faces():
    return fk.data.load("faces", "test", size=400)


def build(ds, **kw):
    torch.manual_seed(0)
    return fk.models.build(kw.pop("name", "mixing"), ds, **{**TINY, **kw})


def test_mask_and_unmixing_identity(faces):
    m = torch.tensor([[1.0, 0.0, 1.0, 0.0]]).expand(5, 4)
    mask = chunk_mask(m, 3)
    assert mask.shape == (5, 12) and mask[0].tolist() == [1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0]
    # on the encoder's own outputs for two batches of faces (not random tensors)
    model = build(faces)
    with torch.no_grad():
        f1 = model.encoder(images_to_signed(faces.images_at(np.arange(5))))
        f2 = model.encoder(images_to_signed(faces.images_at(np.arange(5, 10))))
    assert f1.shape == (5, 12) and not torch.equal(f1, f2)
    f12 = mix(f1, f2, mask)
    for c, source in enumerate((f1, f2, f1, f2)):  # chunk c comes from f1 where the mask is 1
        assert torch.equal(f12[:, 3 * c : 3 * c + 3], source[:, 3 * c : 3 * c + 3]), c
    # unmixing: mixing f12 with f1 under the same mask restores f1 exactly (the paper's x4 = Dec(mix(Enc(x3), f1)))
    assert torch.equal(mix(f12, f1, mask), f1)
    assert not torch.equal(mix(f12, f2, mask), f1)


def test_mask_per_batch_vs_per_sample(faces):
    for mode, rows in (("per_batch", 1), ("per_sample", 7)):
        model = build(faces, mask=mode)
        torch.manual_seed(0)
        m = model.sample_mask(7, "cpu")
        assert m.shape == (rows, 4) and set(m.unique().tolist()) <= {0.0, 1.0}
    model = build(faces)
    m = torch.stack([model.sample_mask(1, "cpu") for _ in range(200)])
    assert 0.4 < float(m.mean()) < 0.6  # Bernoulli(0.5)


def test_swap_all_and_no_chunks_are_reconstructions(faces):
    model = build(faces).eval()
    a, b = faces.images_at(np.arange(4)), faces.images_at(np.arange(4, 8))
    all_chunks = list(range(4))
    torch.testing.assert_close(model.swap(a, b, chunks=all_chunks), model.reconstruct(a))
    torch.testing.assert_close(model.swap(a, b, chunks=[]), model.reconstruct(b))
    mixed = model.swap(a, b, chunks=[0, "chunk2"])
    # by hand: chunks 0 and 2 (features 0-2, 6-8) of a's code, chunks 1 and 3 of b's, decoded
    with torch.no_grad():
        fa, fb = model.encoder(images_to_signed(a)), model.encoder(images_to_signed(b))
        code = torch.cat([fa[:, 0:3], fb[:, 3:6], fa[:, 6:9], fb[:, 9:12]], 1)
        by_hand = model.decode(fk.models.base.Code(code, model.chunk_slices()))
    torch.testing.assert_close(mixed, by_hand, rtol=0, atol=0)
    assert not torch.allclose(mixed, model.reconstruct(a)) and not torch.allclose(mixed, model.reconstruct(b))
    with pytest.raises(UsageError, match="unknown chunk 9; mixing has chunks 0..3"):
        model.swap(a, b, chunks=[9])


def test_retrieve_ranks_by_l2_on_chunks(faces):
    model = build(faces).eval()
    g = faces.images_at(np.arange(10))
    idx, dist = model.retrieve(g[:3], g, chunks=[1])
    assert idx[:, 0].tolist() == [0, 1, 2] and torch.allclose(dist[:, 0], torch.zeros(3), atol=1e-3)
    assert bool((dist[:, 1:] >= dist[:, :-1]).all())
    f = model.encode(g).tensor[:, 3:6]
    expect = torch.cdist(f[:3], f).argsort(1)
    assert torch.equal(idx, expect)


def _param_owner(model):
    owner = {}
    for prefix in ("encoder", "decoder", "classifier", "discriminator"):
        for n, _p in getattr(model, prefix).named_parameters():
            owner[f"{prefix}.{n}"] = prefix
    return owner


def test_each_player_step_changes_only_its_parameters(faces):
    model = build(faces).train()
    opts = model.configure_optimizers()
    assert list(opts) == ["generator", "classifier", "discriminator"]  # §4.7 order
    batches = iter([faces.get_batch(np.arange(i, i + 6)) for i in range(0, 36, 6)])
    players = Players(opts, {n: None for n in opts}, Dist(), fetch=lambda: next(batches))
    own = {"generator": {"encoder", "decoder"}, "classifier": {"classifier"}, "discriminator": {"discriminator"}}
    owner = _param_owner(model)
    changed_by = {}
    real_step = players.step

    def spy(name, loss, **kw):
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        real_step(name, loss, **kw)
        changed_by[name] = {owner[k] for k, v in model.named_parameters() if not torch.equal(before[k], v)}

    players.step = spy
    losses = model.train_step(next(batches), 0, players)
    assert set(losses) >= {"mix", "gan", "cls", "generator", "classifier", "discriminator"}
    assert list(changed_by) == ["generator", "classifier", "discriminator"]
    for name, changed in changed_by.items():
        assert changed == own[name], (name, changed)


def test_classifier_sees_x1_x2_x3_in_order(faces):
    model = build(faces).train()
    seen = []
    model.classifier.features.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    batch = faces.get_batch(np.arange(5))
    x1 = images_to_signed(batch["image"])
    torch.manual_seed(3)
    x2, _, m, mask, x3 = model.mixed(x1)
    model.classifier_loss(x1, x2, x3, m)
    inp = seen[-1]
    assert inp.shape[1] == 9
    assert torch.equal(inp[:, :3], x1) and torch.equal(inp[:, 3:6], x1.roll(1, 0)) and torch.equal(inp[:, 6:], x3)
    # and x3 is the decoded mix m⊙f1 + (1−m)⊙f2 with f2 the rolled batch
    f1 = model.encoder(x1)
    torch.testing.assert_close(x3, model.decoder(mask * f1 + (1 - mask) * f1.roll(1, 0)))


def test_ablation_switches_and_weights(faces):
    players = {t: list(build(faces, terms=t).configure_optimizers()) for t in TERMS}
    assert players["AE"] == ["generator"] and players["MIX"] == ["generator"]
    assert players["MIX+C"] == ["generator", "classifier"] and players["MIX+G"] == ["generator", "discriminator"]
    assert players["C+G"] == ["generator", "classifier", "discriminator"]
    assert build(faces, weights="code").w == {"ae1": 0.0, "ae2": 10.0, "mix": 10.0, "gan": 1.0, "cls": 1.0}
    assert build(faces, lambda_mix=2.0).w == {"ae1": 0.0, "ae2": 0.0, "mix": 2.0, "gan": 1.0, "cls": 1.0}
    # 64² RGB faces are CelebA-like: λ_M = 30 in both presets (with 1 the decoder collapsed);
    # the AE rows weight their reconstruction the same; grayscale data keeps the paper's 1.
    for preset in ("fast", "paper"):
        assert build(faces, preset=preset).w["mix"] == 30.0 and build(faces, preset=preset, terms="AE+C+G").w["ae1"] == 30.0
    assert build(fk.data.load("shapes2d", "train")).w == {"ae1": 0.0, "ae2": 0.0, "mix": 1.0, "gan": 1.0, "cls": 1.0}
    with pytest.raises(UsageError, match="not a Table 2 row"):
        build(faces, terms="MIX+X")
    ae = build(faces, name="mixing-ae")
    assert ae.chunk_names() == ["chunk0"] and ae.encode(faces.images_at([0])).slices["chunk0"] == slice(0, 12)
    assert not ae.supports("swap")


def test_fast_discriminator_scores_each_image_on_its_own(faces):
    """The authors' batch-norm discriminator scores a fake through the statistics of the fake-only
    batch; the fast preset's spectral-norm one gives an image the same score in any batch."""
    batch = images_to_signed(faces.images_at(np.arange(8)))
    bn = build(faces, preset="paper", **TINY).discriminator.train()  # paper preset keeps the code's BN
    assert not torch.allclose(bn(batch)[:1], bn(batch[:1]), atol=1e-3)
    fast = build(faces)
    assert fast.config.d_norm == "spectral"
    d = fast.discriminator.eval()  # eval: no power-iteration update of σ between the two calls
    torch.testing.assert_close(d(batch)[:1], d(batch[:1]))
    opts = build(faces, d_lr=1e-5).configure_optimizers()
    assert opts["discriminator"].param_groups[0]["lr"] == 1e-5 and opts["generator"].param_groups[0]["lr"] == 5e-4


def test_adversarial_training_does_not_collapse_the_decoder(faces, tmp_path):
    """Regression: with the batch-norm discriminator the fast preset's decoder collapsed to one
    image within 40 steps (reconstruction spread across a batch 0.014 vs 0.258 for the data; the
    spectral-norm one 0.105 — docs/results.md §6)."""
    torch.manual_seed(0)
    model = fk.models.build("mixing", faces, terms="MIX+G")
    fk.train(model, faces, steps=40, out=tmp_path / "run", batch_size=32, num_workers=0, progress=False)
    x = images_to_signed(faces.images_at(np.arange(32)))
    with torch.no_grad():
        rec = model.eval().decoder(model.encoder(x))
    assert float(rec.std(0).mean()) > 0.2 * float(x.std(0).mean())


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 1), (64, 3)])
def test_layouts_for_28_32_64(size, channels):
    enc, dec = Encoder(channels, size, 16, 0.125, "instance"), Decoder(16, channels, size, 0.125, "instance")
    f = enc(torch.rand(2, channels, size, size))
    out = dec(f)
    assert f.shape == (2, 16) and out.shape == (2, channels, size, size)
    # every layer is wired in: the loss reaches each parameter, and every output pixel depends on the code
    out.square().mean().backward()
    for name, p in [*enc.named_parameters(), *dec.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    jac = torch.autograd.functional.jacobian(lambda z: dec(z).sum(0), f.detach()[:1]).abs().sum((-1, -2))
    assert (jac > 0).all()


def test_training_lowers_the_mixing_loss(tmp_path):
    ds = fk.data.load("sklearn-digits", "train")
    torch.manual_seed(0)
    model = fk.models.build("mixing", ds, terms="MIX", num_chunks=4, chunk_size=4, width=0.25, lr=2e-3)
    out = fk.train(model, ds, steps=60, out=tmp_path / "run", batch_size=32, num_workers=0, progress=False, log_every=1)
    import json

    log = [json.loads(line) for line in (out.out / "log.jsonl").read_text().splitlines() if '"losses"' in line]
    first = np.mean([r["losses"]["mix"] for r in log[:5]])
    last = np.mean([r["losses"]["mix"] for r in log[-5:]])
    assert last < 0.7 * first, (first, last)


def test_cli_swap_and_report_sections(tmp_path, capsys):
    import re

    from PIL import Image

    from factorkit.cli import main

    run = tmp_path / "mix"
    tiny = ["--set", "model.num_chunks=3", "--set", "model.chunk_size=2", "--set", "model.width=0.125",
            "--set", "model.cls_width=0.05", "--set", "data.size=2000", "--batch-size", "8", "--num-workers", "0", "--quiet"]
    assert main(["train", "mixing", "--data", "faces", "--steps", "3", "--out", str(run), *tiny]) == 0
    ds = fk.data.load("faces", "test", size=2000)
    paths = []
    for i in (0, 1):
        arr = (ds[i]["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    out = tmp_path / "swapped.png"
    assert main(["edit", str(run), "--image", paths[0], "--swap-with", paths[1], "--chunks", "0,2", "--out", str(out)]) == 0
    got = np.asarray(Image.open(out))
    model = fk.load(run)
    a, b = (torch.from_numpy(np.asarray(Image.open(p)).astype(np.float32) / 255).permute(2, 0, 1)[None] for p in paths)
    expect = (model.swap(a, b, chunks=[0, 2])[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(got, expect)
    capsys.readouterr()
    assert main(["edit", str(run), "--image", paths[0], "--attribute", "Smiling", "--value", "1", "--out", str(out)]) == 2
    assert "does not support 'edit'" in capsys.readouterr().err
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    titles = re.findall(r"<section><h2>(.*?)</h2>", page)
    assert "Swaps" in titles and "Edits across intensities" not in titles
    assert page.count("<h3>chunk ") == 3


@pytest.mark.parametrize("player", ["generator", "classifier", "discriminator"])
def test_each_player_method_alone_changes_only_its_parameters(faces, player):
    model = build(faces).train()
    opts = model.configure_optimizers()
    players = Players(opts, {n: None for n in opts}, Dist(), fetch=None)
    owner = _param_owner(model)
    own = {"generator": {"encoder", "decoder"}, "classifier": {"classifier"}, "discriminator": {"discriminator"}}[player]
    batch = faces.get_batch(np.arange(6))
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    losses = getattr(model, f"{player}_step")(batch, players)
    changed = {owner[k] for k, v in model.named_parameters() if not torch.equal(before[k], v)}
    assert changed == own
    assert player in losses and all(not v.requires_grad for v in losses.values())


def test_discriminator_step_minimises_the_d_side_of_eq_2(faces):
    from factorkit.nn import adversarial as adv

    model = build(faces).eval()  # eval: spectral norm's power iteration does not move between the two passes
    batch = faces.get_batch(np.arange(6))
    seen = {}

    class Spy:
        def step(self, name, loss):
            seen[name] = loss.detach()

    torch.manual_seed(1)
    model.discriminator_step(batch, Spy())
    torch.manual_seed(1)  # the same mask
    x1 = images_to_signed(batch["image"])
    with torch.no_grad():
        x3 = model.mixed(x1)[4]
        real, fake = model.discriminator(x1), model.discriminator(x3)
    expected = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    torch.testing.assert_close(seen["discriminator"], model.w["gan"] * expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(adv.d_loss(real, fake), expected, rtol=1e-5, atol=1e-6)


class _LinearD(torch.nn.Module):
    """D(x) = w·x + b: ∇ₓD = w for every image, so R1 = (γ/2)·‖w‖² by hand."""

    def __init__(self, shape):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(*shape) * 0.01)
        self.b = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return (x * self.w).flatten(1).sum(1, keepdim=True) + self.b


class _Spy:
    def __init__(self):
        self.losses = {}

    def step(self, name, loss):
        self.losses[name] = loss.detach()


def test_r1_penalty_is_gamma_half_squared_input_gradient_and_enters_d_loss(faces):
    batch = faces.get_batch(np.arange(6))
    model = build(faces, r1_gamma=4.0).eval()
    model.discriminator = _LinearD(batch["image"].shape[1:])
    spy = _Spy()
    torch.manual_seed(1)
    out = model.discriminator_step(batch, spy)
    by_hand = 0.5 * 4.0 * float((model.discriminator.w.detach() ** 2).sum())
    assert float(out["r1"]) == pytest.approx(by_hand, rel=1e-5)
    assert float(spy.losses["discriminator"]) == pytest.approx(model.w["gan"] * (float(out["discriminator"]) + by_hand), rel=1e-5)
    off = build(faces).eval()
    off.discriminator = model.discriminator
    assert "r1" not in off.discriminator_step(batch, _Spy())


def test_instance_noise_reaches_every_discriminator_input_and_anneals(faces):
    batch = faces.get_batch(np.arange(6))
    x1 = images_to_signed(batch["image"])
    model = build(faces, instance_noise=0.5, instance_noise_steps=100).eval()
    model.discriminator = _LinearD(x1.shape[1:])
    model.discriminator_step(batch, _Spy())
    real_seen = model.discriminator.seen[0]
    assert float((real_seen - x1).std()) == pytest.approx(0.5, rel=0.05)
    assert model.noise_sigma(0) == 0.5 and model.noise_sigma(50) == pytest.approx(0.25) and model.noise_sigma(200) == 0.0
    model._sigma = 0.0  # as train_step sets it once the anneal has ended
    model.discriminator.seen.clear()
    model.discriminator_step(batch, _Spy())
    assert torch.equal(model.discriminator.seen[0], x1)
    # the generator's adversarial term sees the mixed images x3 plus the same noise
    seen = []
    for sigma in (0.0, 0.5):
        g = build(faces, instance_noise=0.5).eval()
        g.discriminator, g._sigma = _LinearD(x1.shape[1:]), sigma
        opts = g.configure_optimizers()
        torch.manual_seed(3)
        g.generator_step(batch, Players(opts, {n: None for n in opts}, Dist(), fetch=None))
        assert len(g.discriminator.seen) == 1
        seen.append(g.discriminator.seen[0])
    assert float((seen[1] - seen[0]).std()) == pytest.approx(0.5, rel=0.05)


def test_stabilisers_are_off_by_default_and_in_every_preset(faces):
    from factorkit.models.mixing import Mixing

    c = Mixing.Config()
    assert (c.r1_gamma, c.instance_noise, c.instance_noise_steps) == (0.0, 0.0, 0)
    for preset in Mixing.presets(faces.info).values():
        assert not {"model.r1_gamma", "model.instance_noise", "model.instance_noise_steps"} & set(preset)
