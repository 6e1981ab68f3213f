"""DNA-GAN (methods.md §1): pieces, annihilation and swaps, the critic schedule and clipping, the
pair sampler and its schedules, the losses against hand computations, one method per player."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import factorkit as fk
from factorkit.data.pairs import AttributePairSampler
from factorkit.errors import UnsupportedOperation, UsageError
from factorkit.models.base import change_mask
from factorkit.models.dnagan import Pair
from factorkit.train.distributed import Dist
from factorkit.train.trainer import Players

ATTRS = ("Smiling", "Eyeglasses", "Bangs")
TINY = {"attributes": ATTRS, "width": 4, "piece_channels": 2, "schedule": "joint"}  # (the fast preset is cyclic)


@pytest.fixture(scope="module")
def faces():
    return fk.data.load("faces", "train", size=240)


def build(ds, **kw):
    return fk.models.build("dna-gan", ds, seed=0, **{**TINY, **kw})


def players(model):
    opts = model.configure_optimizers()
    return Players(opts, {n: None for n in opts}, Dist(), fetch=None)


def pair_batch(model, ds, step=0, batch_size=4, seed=0):
    sampler = model.batch_sampler(ds, batch_size, seed, 0, 1, step)
    return ds.get_batch(np.array(next(iter(sampler))))


def decoder_input(model, fn):
    """Run ``fn`` and return what the decoder was given (the latent after annihilation / swaps)."""
    seen = []
    handle = model.decoder.net.register_forward_hook(lambda m, args, out: seen.append(args[0].detach().clone()))
    try:
        fn()
    finally:
        handle.remove()
    return seen[-1]


# --- pieces ----------------------------------------------------------------------------------------


def test_an_empty_z_is_refused_naming_the_numbers(faces):
    with pytest.raises(UsageError, match=r"3 attribute pieces × 6 channels = 18 .* 4 × width = 16.* at most 5"):
        build(faces, piece_channels=6)
    with pytest.raises(UsageError, match="leave no channels for z"):
        build(faces, attributes=(), piece_channels=3)  # seven attributes × 3 = 21 ≥ 16
    model = build(faces, piece_channels=5)  # 15 of 16 channels: z keeps one
    assert model.piece(3) == slice(15, 16)


def test_code_parts_are_the_channel_pieces_of_the_latent(faces):
    model = build(faces).eval()
    x = faces.images_at(np.arange(3))
    code = model.encode(x)
    h = model.encoder(x * 2 - 1)
    assert code.dim == 16 * 8 * 8 and list(code.slices) == [*ATTRS, "z"]
    assert torch.equal(code["Eyeglasses"], h[:, 2:4].flatten(1))
    assert torch.equal(code["z"], h[:, 6:].flatten(1))
    assert torch.allclose(model.decode(code), model.reconstruct(x))
    assert model.representation(x).shape == (3, 16)
    assert torch.allclose(model.representation(x), h.mean((2, 3)))


def test_annihilation_zeroes_exactly_piece_i(faces):
    model = build(faces).eval()
    x = faces.images_at(np.arange(4))
    with torch.no_grad():
        h = model.encoder(x * 2 - 1)
    seen = decoder_input(model, lambda: model.edit(x, "Eyeglasses", 0.0))
    assert torch.all(seen[:, 2:4] == 0)
    assert torch.equal(seen[:, :2], h[:, :2]) and torch.equal(seen[:, 4:], h[:, 4:])
    assert bool((h[:, 2:4] != 0).any())  # there was something to annihilate
    kids = decoder_input(model, lambda: model.crossbreed(x[:2], x[2:], "Bangs")["A2"])  # the last decoded: B2
    assert torch.equal(kids[:, 4:6], h[:2, 4:6]) and torch.equal(kids[:, :4], h[2:, :4])


def test_a_swap_of_all_pieces_and_z_is_the_other_images_reconstruction(faces):
    model = build(faces).eval()
    a, b = faces.images_at(np.arange(3)), faces.images_at(np.arange(3, 6))
    everything = model.swap(a, b, chunks=[*ATTRS, "z"])
    assert torch.allclose(everything, model.reconstruct(a), atol=1e-6)
    assert torch.allclose(model.swap(a, b, chunks=[0, 1, 2, 3]), everything)  # by number: n is z
    b_new, a_new = model.swap(a, b, attributes=["Smiling"], both=True)
    seen_b = decoder_input(model, lambda: model.swap(a, b, attributes=["Smiling"]))
    ha, hb = model.encoder(a * 2 - 1), model.encoder(b * 2 - 1)
    assert torch.equal(seen_b[:, :2], ha[:, :2]) and torch.equal(seen_b[:, 2:], hb[:, 2:])
    assert torch.allclose(b_new, model.swap(a, b, attributes=["Smiling"]))
    assert torch.allclose(a_new, model.swap(b, a, attributes=["Smiling"]))
    with pytest.raises(UsageError, match="has pieces for Smiling, Eyeglasses, Bangs"):
        model.swap(a, b, attributes=["Mustache"])
    with pytest.raises(UsageError, match="piece 7 out of range"):
        model.swap(a, b, chunks=[7])


def test_edit_scales_the_reference_piece_and_needs_a_prototype_when_untrained(faces):
    model = build(faces).eval()
    x, ref = faces.images_at(np.arange(4)), faces.images_at(np.arange(4, 5))
    with pytest.raises(UsageError, match="no Bangs prototype yet"):
        model.edit(x, "Bangs", 1.0)
    # value 1 with a reference = the reference's piece swapped in
    assert torch.allclose(model.edit(x, "Bangs", 1.0, reference=ref), model.swap(ref.expand(4, -1, -1, -1), x, ["Bangs"]))
    seen = decoder_input(model, lambda: model.edit(x, "Bangs", torch.tensor([0.0, 0.5, 1.0, 2.0]), reference=ref))
    r = model.encoder(ref * 2 - 1)[:, 4:6]
    for i, v in enumerate([0.0, 0.5, 1.0, 2.0]):
        assert torch.allclose(seen[i, 4:6], v * r[0])
    # interpolate (Fig. 4): λ·a + (1 − λ)·b on two pieces at once
    h = model.encoder(x * 2 - 1)
    seen = decoder_input(model, lambda: model.interpolate(x, {"Bangs": ref, "Smiling": ref}, {"Bangs": 0.25, "Smiling": 1.0}))
    assert torch.allclose(seen[:, 4:6], 0.25 * r.expand(4, -1, -1, -1) + 0.75 * h[:, 4:6], atol=1e-6)
    assert torch.allclose(seen[:, :2], model.encoder(ref * 2 - 1)[:, :2].expand(4, -1, -1, -1))
    with pytest.raises(UsageError, match="unknown option"):
        model.edit(x, "Bangs", 0.0, use_mean=True)
    with pytest.raises(UnsupportedOperation):
        model.traverse(x, 0, [0.0, 1.0])
    with pytest.raises(UnsupportedOperation):
        model.sample(2)


def test_prototypes_are_the_running_mean_of_the_trained_pieces(faces):
    model = build(faces, schedule="cyclic", critic_burst_every=0, prototype_momentum=0.5)
    opt = players(model)
    on, off = {j: [] for j in range(3)}, {j: [] for j in range(3)}
    for step in range(9):  # cyclic: attributes 0, 1, 2 — three updates each
        batch = pair_batch(model, faces, step)
        pairs = model.pairs(batch, step)
        with torch.no_grad():
            h = model.encoder(torch.cat([pairs[0].xa, pairs[0].xb]))  # one encoder batch, as breed()
        b, s = len(pairs[0].xa), model.piece(step % 3)
        on[step % 3].append(h[:b, s].mean(0))
        off[step % 3].append(h[b:, s].mean(0))
        model.train_step(batch, step, opt)
    for j in range(3):
        assert float(model.prototype_count[j]) == 3
        for buf, means in ((model.prototypes, on[j]), (model.off_prototypes, off[j])):
            # update 1: m = 0 (the mean itself); update 2: m = min(0.5, 1/2); update 3: m = min(0.5, 2/3) = 0.5
            expect = 0.5 * (0.5 * means[0] + 0.5 * means[1]) + 0.5 * means[2]
            assert torch.allclose(buf[j], expect, atol=1e-5)


# --- the pair sampler and the schedules -------------------------------------------------------------


def test_joint_pairs_have_the_attribute_on_in_a_and_off_in_b(faces):
    model = build(faces)
    batch = pair_batch(model, faces, batch_size=5)
    assert len(batch["image"]) == 2 * 3 * 5
    pairs = model.pairs(batch, 0)
    assert [p.j for p in pairs] == [0, 1, 2]
    for p in pairs:
        assert bool((p.ya[:, p.j] == 1).all()) and bool((p.yb[:, p.j] == 0).all())
        assert len(p.xa) == len(p.xb) == 5


def test_cyclic_trains_attribute_step_mod_n(faces):
    model = build(faces, schedule="cyclic")
    for step in range(7):
        batch = pair_batch(model, faces, step)
        pairs = model.pairs(batch, step)
        assert [p.j for p in pairs] == [step % 3]
        j = step % 3
        assert bool((pairs[0].ya[:, j] == 1).all()) and bool((pairs[0].yb[:, j] == 0).all())
    with pytest.raises(RuntimeError, match="not A = 1 / B = 0"):
        model.pairs(pair_batch(model, faces, 1), 2)  # attribute 1's batch read as attribute 2's


def test_random_pairs_keep_the_useful_pairs_turned_so_that_a_has_it(faces):
    model = build(faces, schedule="random_pairs")
    labels = faces.attribute_array()[:, [faces.info.attribute_index(a) for a in ATTRS]]
    for step in range(4):
        idx = next(iter(model.batch_sampler(faces, 8, 0, 0, 1, step)))
        la, lb = labels[idx[:8], step % 3], labels[idx[8:], step % 3]
        batch = faces.get_batch(np.array(idx))
        pairs = model.pairs(batch, step)
        useful = la != lb
        assert (len(pairs[0].xa) if pairs else 0) == int(useful.sum())
        if pairs:
            assert bool((pairs[0].ya[:, step % 3] == 1).all()) and bool((pairs[0].yb[:, step % 3] == 0).all())
            # the images are turned with their labels: A is whichever of the pair has the attribute
            first_has = la[useful] > 0.5
            x = batch["image"] * 2 - 1
            xa_expect = torch.where(torch.as_tensor(first_has)[:, None, None, None], x[:8][useful], x[8:][useful])
            assert torch.equal(pairs[0].xa, xa_expect)


@pytest.mark.parametrize("schedule", ["joint", "cyclic", "random_pairs"])
def test_the_pair_sampler_resumes_exactly(faces, schedule):
    labels = faces.attribute_array()
    whole = AttributePairSampler(labels, [0, 2, 3], 6, seed=3, schedule=schedule)
    it = iter(whole)
    first = [next(it) for _ in range(40)]  # past an epoch of the rarest stream
    later = iter(AttributePairSampler(labels, [0, 2, 3], 6, seed=3, schedule=schedule, start=25))
    assert [next(later) for _ in range(15)] == first[25:]
    # two ranks take disjoint halves of each block
    r0 = next(iter(AttributePairSampler(labels, [0, 2, 3], 3, seed=3, schedule=schedule, rank=0, world=2)))
    r1 = next(iter(AttributePairSampler(labels, [0, 2, 3], 3, seed=3, schedule=schedule, rank=1, world=2)))
    blocks = len(first[0]) // 6
    for k in range(blocks):
        assert r0[3 * k:3 * k + 3] + r1[3 * k:3 * k + 3] == first[0][6 * k:6 * k + 6]


def test_the_pair_sampler_names_an_attribute_too_rare_for_a_batch(faces):
    labels = faces.attribute_array()
    rare = int((labels[:, 4] > 0.5).sum())  # Wearing_Hat
    with pytest.raises(UsageError, match=f"only {rare} images with Wearing_Hat = 1"):
        AttributePairSampler(labels, [4], rare + 1, seed=0, names=["Wearing_Hat"])


# --- the critic schedule and clipping -------------------------------------------------------------


def test_the_critic_schedule_is_100_every_500th_step_and_1_otherwise(faces):
    model = build(faces)
    assert [model.critic_iterations(s) for s in (0, 1, 2, 499, 500, 501, 999, 1000, 1500)] == [100, 1, 1, 1, 100, 1, 1, 100, 100]
    # one attribute per step (i = step mod n): the k-th burst moves to the first step ≥ 500k that trains
    # attribute k mod n, so the bursts go round the attributes
    cyclic = build(faces, schedule="cyclic")
    bursts = [s for s in range(3100) if cyclic.critic_iterations(s) == 100]
    assert bursts == [0, 502, 1001, 1500, 2002, 2501, 3000]
    assert [s % 3 for s in bursts] == [0, 1, 2, 0, 1, 2, 0]
    four = build(faces, schedule="cyclic", attributes=ATTRS + ("Wearing_Hat",))  # n divides 500
    assert [s for s in range(2100) if four.critic_iterations(s) == 100] == [0, 501, 1002, 1503, 2000]
    counts = []
    for step in (0, 1, 502):
        model2 = build(faces, schedule="cyclic")
        opt = players(model2)
        calls = []
        real_step = opt.step
        opt.step = lambda name, loss, calls=calls, real_step=real_step, **kw: (calls.append(name), real_step(name, loss, **kw))
        model2.train_step(pair_batch(model2, faces, step), step, opt)
        counts.append((calls.count("critic"), calls.count("generator"), calls[-1]))
    assert counts == [(100, 1, "generator"), (1, 1, "generator"), (100, 1, "generator")]


def test_after_every_critic_step_each_critic_parameter_lies_in_the_clip_range(faces):
    model = build(faces, schedule="cyclic", clip=0.01)
    with torch.no_grad():
        for p in model.critic.parameters():
            p.mul_(0).add_(0.5)  # far outside: the first step's clip must bring them in
    opt = players(model)
    seen = []
    real_step = opt.step

    def step(name, loss, **kw):
        if name != "critic":
            return real_step(name, loss, **kw)
        real_step(name, loss, **kw)
        seen.append(None)  # the clip runs after this returns: checked on the next call and at the end
    opt.step = step
    checks = []
    original = fk.nn.adversarial.clip_weights

    def clip_and_check(module, c):
        original(module, c)
        checks.append(max(float(p.abs().max()) for p in module.parameters()))
    fk.nn.adversarial.clip_weights = clip_and_check
    try:
        model.train_step(pair_batch(model, faces, 0), 0, opt)
    finally:
        fk.nn.adversarial.clip_weights = original
    assert len(checks) == len(seen) == 100
    assert max(checks) <= 0.01
    assert all(float(p.abs().max()) <= 0.01 for p in model.critic.parameters())  # BN γ, β included
    ns = build(faces, schedule="cyclic", gan="nonsaturating")
    with torch.no_grad():
        for p in ns.critic.parameters():
            p.fill_(0.5)
    ns.train_step(pair_batch(ns, faces, 1), 1, players(ns))
    assert any(float(p.abs().max()) > 0.01 for p in ns.critic.parameters())  # no clipping without WGAN


# --- losses by hand ------------------------------------------------------------------------------


def test_the_wgan_losses_equal_hand_computations(faces):
    model = build(faces)
    s = {"A": [torch.tensor([0.3, -0.1]), torch.tensor([0.5])], "B": [torch.tensor([0.2, 0.4]), torch.tensor([-0.2])],
         "B2": [torch.tensor([0.1, -0.3]), torch.tensor([0.0])], "A2": [torch.tensor([0.6, 0.0]), torch.tensor([0.7])]}
    # the code's loss_D = Σ_i mean(D(B2) − D(A)) + mean(D(A2) − D(B)); loss_G's GAN part = −Σ_i mean D(B2) + mean D(A2)
    critic = ((0.1 - 0.3) / 2 - (0.3 - 0.1) / 2 + (0.6 + 0.0) / 2 - (0.2 + 0.4) / 2) + (0.0 - 0.5 + 0.7 + 0.2)
    gen = -((0.1 - 0.3) / 2 + (0.6 + 0.0) / 2) - (0.0 + 0.7)
    assert math.isclose(float(model.critic_loss(s)), critic, rel_tol=1e-6)
    assert math.isclose(float(model.gan_loss(s)), gen, rel_tol=1e-6)
    # eq. 3 as the code: mean |·| in [0, 1] units (model inputs are [−1, 1])
    x, r = torch.tensor([[-1.0, 1.0], [0.0, 0.5]]), torch.tensor([[-0.5, 1.0], [1.0, 0.5]])
    assert math.isclose(float(model.rec_loss(x, r)), (0.25 + 0 + 0.5 + 0) / 4, rel_tol=1e-6)


def test_the_nonsaturating_losses_equal_eqs_4_and_6_to_8(faces):
    model = build(faces, gan="nonsaturating")

    def sp(v):  # −log σ(v) = softplus(−v)
        return math.log1p(math.exp(-v))
    s = {"A": [torch.tensor([0.3])], "B": [torch.tensor([-0.4])], "B2": [torch.tensor([1.2])], "A2": [torch.tensor([-0.7])]}
    l_d1 = sp(0.3) + sp(-1.2)  # −log D(A) − log(1 − D(B2))
    l_d0 = sp(-0.4) + sp(0.7)  # −log D(B) − log(1 − D(A2))
    assert math.isclose(float(model.critic_loss(s)), l_d1 + l_d0, rel_tol=1e-5)
    assert math.isclose(float(model.gan_loss(s)), sp(1.2) + sp(-0.7), rel_tol=1e-5)


def test_wgan_gp_penalises_the_critics_gradient_instead_of_clipping(faces):
    """``gan=wgan-gp``: the critic has no BatchNorm; its step adds λ Σ (‖∇ f_j(x̂, ŷ)‖ − 1)² over B2 against A and
    A2 against B of every pair, checked with a linear critic whose gradient is the same at every (x̂, ŷ); and
    nothing is clipped."""
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in build(faces).critic.modules())
    model = build(faces, gan="wgan-gp", gp_weight=3.0)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.critic.modules())
    pairs = model.pairs(pair_batch(model, faces, 0), 0)
    kids = model.breed(pairs)
    n, d = len(model.attr_names), pairs[0].xa[0].numel()
    gen = torch.Generator().manual_seed(1)
    w, v = torch.randn(d, n, generator=gen) * 0.01, torch.randn(n, n, generator=gen)

    class Linear(torch.nn.Module):  # f(x, y) = x·W + y·V: ∇ f_j = (W[:, j], V[:, j]) everywhere
        def forward(self, x, labels):
            return x.flatten(1) @ w + labels @ v
    model.critic = Linear()
    # the norm is over the image and the labels together (a child's labels differ from its real counterpart's)
    expected = sum(2 * 3.0 * (math.hypot(float(w[:, p.j].norm()), float(v[:, p.j].norm())) - 1) ** 2 for p in pairs)
    assert len(pairs) == n and math.isclose(float(model.gradient_penalty(pairs, kids)), expected, rel_tol=1e-5)

    model = build(faces, schedule="cyclic", gan="wgan-gp")
    with torch.no_grad():
        for p in model.critic.parameters():
            p.fill_(0.5)
    opt, seen = players(model), []
    real_step = opt.step

    def step(name, loss, **kw):
        if name == "critic":
            seen.append(float(loss))
        return real_step(name, loss, **kw)
    opt.step = step
    pairs = model.pairs(pair_batch(model, faces, 1), 1)
    kids = model.breed(pairs)
    plain = float(model.critic_loss(model.critic_scores(pairs, kids, detach=True)))
    model.critic_step(pairs, kids, opt)
    assert seen[0] > plain + 1.0  # the penalty is in the critic's loss (a critic of 0.5s is far from 1-Lipschitz)
    assert any(float(p.abs().max()) > 0.01 for p in model.critic.parameters())  # and nothing was clipped


def test_the_critic_is_told_the_donors_or_the_recipients_labels(faces):
    from factorkit.models.dnagan import Pair

    ya, yb = torch.tensor([[1.0, 0.0, 1.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    p = Pair(0, torch.zeros(1, 3, 64, 64), ya, torch.zeros(1, 3, 64, 64), yb)
    assert [t.tolist() for t in build(faces).child_labels(p)] == [ya.tolist(), yb.tolist()]  # the code: B2 | y_A, A2 | y_B
    b2, a2 = build(faces, critic_labels="recipient").child_labels(p)
    assert b2.tolist() == [[1.0, 1.0, 0.0]] and a2.tolist() == [[0.0, 0.0, 1.0]]


# --- players -----------------------------------------------------------------------------------------


def test_each_players_step_changes_only_its_own_parameters(faces):
    model = build(faces, schedule="cyclic", gan="nonsaturating")  # no clipping: only the step can change the critic
    pairs = model.pairs(pair_batch(model, faces, 1), 1)
    opt = players(model)

    def snapshot(part):
        return [p.detach().clone() for p in part.parameters()]
    kids = model.breed(pairs)
    before = {k: snapshot(getattr(model, k)) for k in ("encoder", "decoder", "critic")}
    model.critic_step(pairs, kids, opt)
    after = {k: snapshot(getattr(model, k)) for k in before}
    assert all(torch.equal(a, b) for k in ("encoder", "decoder") for a, b in zip(before[k], after[k]))
    assert any(not torch.equal(a, b) for a, b in zip(before["critic"], after["critic"]))
    model.generator_step(pairs, kids, opt)
    final = {k: snapshot(getattr(model, k)) for k in before}
    assert all(torch.equal(a, b) for a, b in zip(after["critic"], final["critic"]))
    for k in ("encoder", "decoder"):
        assert any(not torch.equal(a, b) for a, b in zip(after[k], final[k]))


@pytest.mark.parametrize("annihilate", [True, False])
def test_breed_decodes_the_four_children_of_eq_2_or_eq_9(faces, annihilate):
    model = build(faces, schedule="cyclic", annihilate=annihilate)
    pairs = model.pairs(pair_batch(model, faces, 1), 1)  # attribute 1: Eyeglasses, channels 2:4
    p = pairs[0]
    with torch.no_grad():
        h = model.encoder(torch.cat([p.xa, p.xb]))
    ea, eb = h[:4], h[4:]
    seen = decoder_input(model, lambda: model.breed(pairs))
    a1, b1, a2, b2 = seen.split(4)
    assert torch.equal(a1, ea)
    keep = [0, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    assert torch.equal(b1[:, keep], eb[:, keep]) and torch.equal(a2[:, keep], ea[:, keep]) and torch.equal(b2[:, keep], eb[:, keep])
    assert torch.equal(b2[:, 2:4], ea[:, 2:4])  # B2 takes a_i
    if annihilate:
        assert torch.all(b1[:, 2:4] == 0) and torch.all(a2[:, 2:4] == 0)  # eq. 2: B1 and A2 annihilated
    else:
        assert torch.equal(b1[:, 2:4], eb[:, 2:4]) and torch.equal(a2[:, 2:4], eb[:, 2:4])  # eq. 9


def test_the_critic_scores_each_source_with_its_labels_and_column_j(faces):
    model = build(faces, critic_labels="recipient")
    pairs = model.pairs(pair_batch(model, faces, 0, batch_size=2), 0)  # joint: attributes 0, 1, 2
    kids = [{"B2": p.xb + 0.1, "A2": p.xa - 0.1} for p in pairs]
    calls = []

    class Stub(torch.nn.Module):  # score of attribute c = 10·c + the image's mean, labels recorded
        def forward(self, x, labels):
            calls.append((x.detach().clone(), labels.clone()))
            return x.mean((1, 2, 3))[:, None] + 10 * torch.arange(3.0)[None]
    model.critic = Stub()
    s = model.critic_scores(pairs, kids, detach=True)
    assert [len(c[0]) for c in calls] == [6, 6, 6, 6]  # B2, A2, A, B: each source its own batch
    b2_lab, a2_lab = calls[0][1], calls[1][1]
    for j, p in enumerate(pairs):
        rows = slice(2 * j, 2 * j + 2)
        want_b2, want_a2 = p.yb.clone(), p.ya.clone()
        want_b2[:, j], want_a2[:, j] = 1, 0
        assert torch.equal(b2_lab[rows], want_b2) and torch.equal(a2_lab[rows], want_a2)
        assert torch.equal(calls[2][1][rows], p.ya) and torch.equal(calls[3][1][rows], p.yb)
        assert torch.allclose(s["B2"][j], (p.xb + 0.1).mean((1, 2, 3)) + 10 * j)  # column j for attribute j
        assert torch.allclose(s["A"][j], p.xa.mean((1, 2, 3)) + 10 * j)


def test_crossbreed_strength_carries_each_childs_piece_past_the_swap(faces):
    a, b = faces.images_at(np.arange(2)), faces.images_at(np.arange(2, 4))
    for annihilate in (True, False):
        model = build(faces, annihilate=annihilate).eval()
        with torch.no_grad():
            ha, hb = model.encoder(a * 2 - 1), model.encoder(b * 2 - 1)
        s = model.piece(model.attr_names.index("Smiling"))
        off = torch.zeros_like(hb[:, s]) if annihilate else hb[:, s]
        for v in (1.0, 2.0, 0.5):
            seen: list = []
            handle = model.decoder.net.register_forward_hook(lambda m, args, out, seen=seen: seen.append(args[0].detach().clone()))
            try:
                model.crossbreed(a, b, "Smiling", strength=v)
            finally:
                handle.remove()
            a2, b2 = seen[2], seen[3]  # decoded in the order A1, B1, A2, B2
            torch.testing.assert_close(b2[:, s], off + v * (ha[:, s] - off))  # B2: v of the way from off to a_i
            torch.testing.assert_close(a2[:, s], ha[:, s] + v * (off - ha[:, s]))  # A2: v of the way from a_i to off
            rest = torch.ones(b2.shape[1], dtype=torch.bool)
            rest[s] = False
            assert torch.equal(b2[:, rest], hb[:, rest]) and torch.equal(a2[:, rest], ha[:, rest])  # other pieces and z kept
            if v == 1.0:  # exactly the paper's swap
                assert torch.equal(b2[:, s], ha[:, s]) and torch.equal(a2[:, s], off)


def test_without_annihilation_b1_is_the_plain_reconstruction_and_a2_takes_bs_piece(faces):
    model = build(faces, annihilate=False).eval()
    a, b = faces.images_at(np.arange(2)), faces.images_at(np.arange(2, 4))
    kids = model.crossbreed(a, b, "Smiling")
    assert torch.allclose(kids["B1"], model.reconstruct(b))
    assert torch.allclose(kids["A2"], model.swap(b, a, ["Smiling"]))
    assert torch.allclose(kids["B2"], model.swap(a, b, ["Smiling"]))
    on = build(faces).eval()
    assert torch.allclose(on.crossbreed(a, b, "Smiling")["A2"], on.edit(a, "Smiling", 0.0))
    two = decoder_input(on, lambda: on.crossbreed(a, b, ["Smiling", "bangs"]))  # several pieces; any case
    hb = on.encoder(b * 2 - 1)
    ha = on.encoder(a * 2 - 1)
    assert torch.equal(two[:, :2], ha[:, :2]) and torch.equal(two[:, 4:6], ha[:, 4:6]) and torch.equal(two[:, 2:4], hb[:, 2:4])
    # annihilate=false never decoded a zero piece: "off" is the mean b_i of the training B's
    model.prototype_count.fill_(1)
    model.prototypes.normal_()
    model.off_prototypes.normal_()
    seen = decoder_input(model, lambda: model.edit(a, "Smiling", torch.tensor([0.0, 0.25])))
    assert torch.allclose(seen[0, :2], model.off_prototypes[0])
    assert torch.allclose(seen[1, :2], 0.75 * model.off_prototypes[0] + 0.25 * model.prototypes[0], atol=1e-6)


def test_training_resumes_exactly_with_pair_batches(faces, tmp_path):
    kw = {"checkpoint_every": 2, "image_every": 0, "num_workers": 0, "batch_size": 4}
    straight = build(faces, schedule="cyclic", critic_burst_every=3, critic_burst=2)
    fk.train(straight, faces, steps=4, out=tmp_path / "a", progress=False, **kw)
    half = build(faces, schedule="cyclic", critic_burst_every=3, critic_burst=2)
    fk.train(half, faces, steps=2, out=tmp_path / "b", progress=False, **kw)
    again = build(faces, schedule="cyclic", critic_burst_every=3, critic_burst=2)
    result = fk.train(again, faces, steps=4, out=tmp_path / "b", resume=True, progress=False, **kw)
    assert result.resumed_from == 2
    for (k, va), vb in zip(straight.state_dict().items(), again.state_dict().values()):
        assert torch.equal(va, vb), k
    assert float(again.prototype_count.sum()) == 4  # the prototypes' buffers travel in the checkpoint


# --- CLI, evaluate and report ---------------------------------------------------------------------


def test_cli_train_evaluate_swap_edit_and_report(tmp_path, capsys):
    import json
    import re

    from PIL import Image

    from factorkit.cli import main

    out = tmp_path / "dna"
    tiny = ["--set", "model.width=4", "--set", "model.piece_channels=2", "--set", "model.attributes=Smiling,Eyeglasses",
            "--set", "model.critic_burst=2", "--set", "data.size=2000", "--batch-size", "4", "--num-workers", "0", "--quiet"]
    assert main(["train", "dna-gan", "--data", "faces", "--steps", "4", "--out", str(out), *tiny]) == 0
    # (pair-swap needs the judge, which a 2,000-face dataset would train first: its maths is tested
    # below with a perfect judge; here the CLI path of the metrics that need none)
    assert main(["evaluate", str(out), "--metrics", "psnr,counterfactual", "--json"]) == 0
    capsys.readouterr()
    record = json.loads((out / "metrics.json").read_text())
    assert {k.split(".")[1] for k in record["metrics"] if k.startswith("counterfactual.")} - {"gain"} == {"Smiling", "Eyeglasses"}
    assert main(["evaluate", str(out), "--metrics", "pair-swap", "--attributes", "Bangs"]) == 2
    assert "dna-gan edits only Smiling, Eyeglasses" in capsys.readouterr().err
    record["metrics"].update({f"pair-swap.Smiling.{d}.{k}": 0.5 for d in ("add", "remove")
                              for k in ("success", "closer", "psnr", "psnr_reconstruction", "identity",
                                        "identity_reconstruction", "closer_input", "psnr_input")})
    record["metrics"]["pair-swap.Smiling.n"] = 10
    (out / "metrics.json").write_text(json.dumps(record))

    ds = fk.data.load("faces", "test", size=2000)
    pngs = []
    for i in (0, 1):
        pngs.append(tmp_path / f"face{i}.png")
        Image.fromarray((ds[i]["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(pngs[-1])
    swapped = tmp_path / "s.png"
    assert main(["edit", str(out), "--image", str(pngs[0]), "--swap-with", str(pngs[1]), "--attribute", "Eyeglasses",
                 "--out", str(swapped)]) == 0
    model = fk.load(out)

    def load(p):
        return torch.from_numpy(np.asarray(Image.open(p)).astype(np.float32) / 255).permute(2, 0, 1)[None]
    expect = (model.swap(load(pngs[0]), load(pngs[1]), ["Eyeglasses"])[0].permute(1, 2, 0).numpy() * 255).round()
    np.testing.assert_array_equal(np.asarray(Image.open(swapped)), expect.astype(np.uint8))
    for extra, message in ((["--attribute", "Bangs"], "swaps the pieces Smiling, Eyeglasses"),
                           (["--attribute", "Eyeglasses", "--value", "1"], "--value does not go with --swap-with"),
                           (["--attribute", "Eyeglasses", "--chunks", "0"], "one of --chunks I,J"),
                           ([], "one of --chunks I,J")):
        assert main(["edit", str(out), "--image", str(pngs[0]), "--swap-with", str(pngs[1]), *extra,
                     "--out", str(tmp_path / "x.png")]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "x.png").exists()
    assert main(["edit", str(out), "--image", str(pngs[0]), "--attribute", "Smiling", "--value", "0",
                 "--out", str(tmp_path / "a.png")]) == 0  # annihilation
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    titles = re.findall(r"<section><h2>(.*?)</h2>", page)
    assert "Crossbreeds vs true counterfactuals" in titles and "Swaps" in titles
    assert "pair-swap (crossbreeds vs the true counterfactuals" in page and "<th>closer than input</th>" in page
    assert "<h3>Smiling × Eyeglasses</h3>" in page  # Fig. 4's interpolation


def test_pair_swap_scores_a_perfect_breeder_1_and_a_null_breeder_0(faces):
    from factorkit.metrics import editing as E

    test = fk.data.load("faces", "test", size=2400)
    a_name = "Eyeglasses"
    k = test.info.attribute_index(a_name)
    rows = np.arange(len(test))
    x = test.images_at(rows)
    attrs, factors = test.attribute_array(), test.factor_array()
    f_col = [f.name for f in test.info.factors].index(a_name)
    on = test.counterfactual(rows, a_name, np.ones(len(rows), np.int64))
    off = test.counterfactual(rows, a_name, np.zeros(len(rows), np.int64))
    table, index = {}, {}
    hidden = [f.name for f in test.info.factors].index("hair_style")
    for i in rows:  # the judge reads the true factors of every render it may see
        for img, value, added in ((x[i], attrs[i, k], False), (on[i], 1, True), (off[i], 0, False)):
            f = factors[i].copy()
            f[f_col] = int(value)
            if added and i % 2 and not attrs[i, k]:  # adding it hides another factor on half the true renders
                f[hidden] = f[hidden] + 1
            a = attrs[i].copy()
            a[k] = value
            table[img.numpy().tobytes()] = (f, a)
        index[x[i].numpy().tobytes()] = i

    class Judge:
        def read(self, imgs):  # a render it has not seen (a blurred reconstruction) reads as all zeros
            unseen = (np.zeros_like(factors[0]), None)
            return torch.as_tensor(np.stack([table.get(t.numpy().tobytes(), unseen)[0] for t in imgs]))

        def probabilities(self, imgs):
            return torch.as_tensor(np.stack([table[t.numpy().tobytes()][1] for t in imgs]))

    class Breeder:
        name = "breeder"

        def __init__(self, perfect, blur=False):
            self.perfect, self.blur = perfect, blur

        def reconstruct(self, imgs):
            return imgs * 0.5 + 0.25 if self.blur else imgs

        def crossbreed(self, xa, xb, attribute):
            ia, ib = [index[t.numpy().tobytes()] for t in xa], [index[t.numpy().tobytes()] for t in xb]
            if not self.perfect:
                return {"A1": xa, "A2": xa, "B2": xb}
            return {"A1": xa, "A2": off[ia], "B2": on[ib]}

    good = E.pair_swap(Breeder(True), test, a_name, Judge(), max_pairs=20)
    bad = E.pair_swap(Breeder(False), test, a_name, Judge(), max_pairs=20)
    assert good["n"] == bad["n"] == 20
    n_other = len(test.info.factors) - 1
    # adding hides the hair style on some of the 20 true renders (one factor of n_other), removing never
    assert 1 - 1 / n_other < good["add.identity_of_truth"] < 1 and good["remove.identity_of_truth"] == 1.0
    for d in ("add", "remove"):
        assert good[f"{d}.success"] == good[f"{d}.closer"] == good[f"{d}.identity_truth"] == 1.0
        assert good[f"{d}.identity"] == good[f"{d}.identity_of_truth"]  # the truth itself
        assert bad[f"{d}.identity_truth"] == bad[f"{d}.identity_of_truth"]  # the input, read against the truth
        assert good[f"{d}.psnr"] > 60  # the truth itself
        assert good[f"{d}.change"] == pytest.approx(good[f"{d}.change_truth"]) and good[f"{d}.change"] > 0.001
        assert bad[f"{d}.change"] == 0.0 and bad[f"{d}.change_truth"] == good[f"{d}.change_truth"]
        assert bad[f"{d}.success"] == bad[f"{d}.closer"] == 0.0 and bad[f"{d}.identity"] == 1.0
        assert good["add.identity"] < 1.0 and good["remove.identity"] == 1.0
        assert bad[f"{d}.psnr"] == pytest.approx(bad[f"{d}.psnr_reconstruction"])  # the null child is the reconstruction
        assert good[f"{d}.closer_input"] == 1.0 and bad[f"{d}.closer_input"] == 0.0
        for who in (good, bad):  # the per-factor split averages to the score, and names the factor lost
            for key in ("identity", "identity_of_truth"):
                split = who[f"{d}.{key}_by_factor"]
                assert a_name not in split and len(split) == n_other
                assert np.mean(list(split.values())) == pytest.approx(who[f"{d}.{key}"])
        lost = {f: v for f, v in good[f"{d}.identity_by_factor"].items() if v < 1}
        assert list(lost) == (["hair_style"] if d == "add" else [])
        assert bad[f"{d}.psnr_input"] == pytest.approx(bad[f"{d}.psnr"])  # the null child is the input too
    # a null residual breeder (children = the inputs) beside a poor reconstruction: nearer the truth
    # than the reconstruction every time, but never nearer than the input it returned unchanged
    null = E.pair_swap(Breeder(False, blur=True), test, a_name, Judge(), max_pairs=20)
    for d in ("add", "remove"):
        assert null[f"{d}.closer"] == 1.0 and null[f"{d}.closer_input"] == 0.0
    with pytest.raises(UsageError, match="needs a model that breeds attribute pairs"):
        E.pair_swap(object(), test, a_name, Judge())


def test_residual_edit_output_is_the_input_plus_the_decoders_change(faces):
    decoded = build(faces).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # an untrained decoder draws 0.5 for every latent: give the pieces an effect
        for q in [*decoded.encoder.parameters(), *decoded.decoder.parameters()]:
            q.normal_(0, 0.3)
    residual = build(faces, edit_output="residual").eval()
    residual.load_state_dict(decoded.state_dict())
    a, b = faces.images_at(np.arange(3)), faces.images_at(np.arange(3, 6))
    rec_a, rec_b = decoded.reconstruct(a), decoded.reconstruct(b)
    res, plain = residual.crossbreed(a, b, "Smiling"), decoded.crossbreed(a, b, "Smiling")
    for name, child in plain.items():  # the baseline is the parent's decode as eq. 3 trains it: A1, B1
        x, rec = (a, rec_a) if name.startswith("A") else (b, plain["B1"])
        torch.testing.assert_close(res[name], (x + child - rec).clamp(0, 1))
    torch.testing.assert_close(res["A1"], a)  # A's own latent: the input itself, not its blurred reconstruction
    torch.testing.assert_close(res["B1"], b)
    assert (plain["B1"] - rec_b).abs().max() > 0.01  # B's plain decode keeps b_i: a different, untrained baseline
    # the test-time crossbreed is exactly what children=residual trains
    trained = build(faces, edit_output="residual", children="residual").eval()
    trained.load_state_dict(decoded.state_dict())
    j = trained.attr_names.index("Smiling")
    ones, zeros = torch.ones(3, 3), torch.zeros(3, 3)
    with torch.no_grad():
        kids = trained.breed([Pair(j, a * 2 - 1, ones, b * 2 - 1, zeros)])[0]
    torch.testing.assert_close(res["B2"], (kids["B2"] + 1) / 2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(res["A2"], (kids["A2"] + 1) / 2, rtol=1e-5, atol=1e-5)
    b_new, a_new = residual.swap(a, b, attributes=["Smiling"], both=True)
    d_b, d_a = decoded.swap(a, b, attributes=["Smiling"], both=True)
    torch.testing.assert_close(b_new, (b + d_b - rec_b).clamp(0, 1))
    torch.testing.assert_close(a_new, (a + d_a - rec_a).clamp(0, 1))
    torch.testing.assert_close(residual.edit(b, "Bangs", 0.0), (b + decoded.edit(b, "Bangs", 0.0) - rec_b).clamp(0, 1))
    # Fig. 4's interpolation is returned as every other edit is
    mix = {"Bangs": 0.25, "Smiling": 1.0}
    refs = {"Bangs": a[:1], "Smiling": a[1:2]}
    torch.testing.assert_close(residual.interpolate(b, refs, mix), (b + decoded.interpolate(b, refs, mix) - rec_b).clamp(0, 1))
    torch.testing.assert_close(residual.interpolate(b, refs, {"Bangs": 0.0, "Smiling": 0.0}), b)


def test_residual_children_are_the_parent_plus_the_change_of_the_decode(faces):
    decoded = build(faces, schedule="cyclic")
    residual = build(faces, schedule="cyclic", children="residual")
    residual.load_state_dict(decoded.state_dict())
    pairs = decoded.pairs(pair_batch(decoded, faces, 1), 1)
    p = pairs[0]
    plain, kids = decoded.breed(pairs)[0], residual.breed(pairs)[0]
    for name in ("A1", "B1"):  # the reconstruction term's images are unchanged
        torch.testing.assert_close(kids[name], plain[name])
    torch.testing.assert_close(kids["A2"], (p.xa + plain["A2"] - plain["A1"]).clamp(-1, 1))
    torch.testing.assert_close(kids["B2"], (p.xb + plain["B2"] - plain["B1"]).clamp(-1, 1))
    # a child whose decode equals its parent's is its parent, exactly
    same = residual.residual_children(p, plain["A1"], plain["B1"], plain["A1"], plain["B1"])
    torch.testing.assert_close(same[0], p.xa)
    torch.testing.assert_close(same[1], p.xb)
    # the critic trains only the difference: shifting both decodes alike leaves the child unchanged,
    # so the gradient of any loss on the child is opposite on the baseline and the child's decode
    a1 = plain["A1"].detach().clone().requires_grad_()
    a2 = plain["A2"].detach().clone().requires_grad_()
    a2_res, _ = residual.residual_children(p, a1, plain["B1"].detach(), a2, plain["B2"].detach())
    (a2_res * torch.randn_like(a2_res)).sum().backward()
    torch.testing.assert_close(a1.grad, -a2.grad)
    assert a2.grad.abs().sum() > 0


def test_the_projection_critic_scores_the_features_plus_their_projection_on_the_labels(faces):
    model = build(faces, critic_condition="projection").eval()
    critic = model.critic
    assert critic.net[0].in_channels == 3  # no label planes
    x = faces.images_at(np.arange(4)) * 2 - 1
    y = torch.tensor([[1.0, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]])
    with torch.no_grad():
        phi = critic.net[:-1](x)
        scores = critic(x, y)
        w, v = critic.net[-1], critic.projection.weight.view(3, 3, -1)
        for i in range(4):
            signs = y[i] * 2 - 1
            for j in range(3):
                hand = w.weight[j] @ phi[i] + w.bias[j] + sum(signs[k] * (v[j, k] @ phi[i]) for k in range(3))
                torch.testing.assert_close(scores[i, j], hand, rtol=1e-4, atol=1e-5)
        # flipping label k moves score j by exactly twice the projection's (j, k) reading
        flipped = y.clone()
        flipped[:, 1] = 1 - flipped[:, 1]
        moved = critic(x, flipped) - scores
        expect = -2 * (y[:, 1] * 2 - 1)[:, None] * torch.einsum("jd,nd->nj", v[:, 1], phi)
        torch.testing.assert_close(moved, expect, rtol=1e-4, atol=1e-5)
    # clipping reaches the projection too (WGAN): every critic parameter, as §1.5 asks
    assert any(p is critic.projection.weight for p in critic.parameters())


def test_the_attribute_classifier_asks_each_child_for_the_recipients_labels_with_i_flipped(faces):
    assert not hasattr(build(faces), "classifier")  # off by default: the paper's losses only
    model = build(faces, schedule="cyclic", gan="nonsaturating", lambda_cls=0.5)
    pairs = model.pairs(pair_batch(model, faces, 1), 1)
    p = pairs[0]
    kids = model.breed(pairs)
    yb2, ya2 = model.intended_labels(p)
    assert torch.equal(yb2[:, p.j], torch.ones(len(p.yb))) and torch.equal(ya2[:, p.j], torch.zeros(len(p.ya)))
    others = [k for k in range(3) if k != p.j]
    assert torch.equal(yb2[:, others], p.yb[:, others]) and torch.equal(ya2[:, others], p.ya[:, others])
    with torch.no_grad():
        lb, la = torch.sigmoid(model.classifier(kids[0]["B2"])), torch.sigmoid(model.classifier(kids[0]["A2"]))
        hand = -(yb2 * lb.log() + (1 - yb2) * (1 - lb).log()).mean() - (ya2 * la.log() + (1 - ya2) * (1 - la).log()).mean()
        torch.testing.assert_close(model.class_loss(pairs, kids), hand, rtol=1e-5, atol=1e-6)
    # the generator's loss is the paper's plus λ_cls L_cls, and each player moves only its own parameters
    opt = players(model)

    def snapshot(part):
        return [q.detach().clone() for q in part.parameters()]
    parts = ("encoder", "decoder", "critic", "classifier")
    before = {k: snapshot(getattr(model, k)) for k in parts}
    real_x = torch.cat([p.xa, p.xb])
    c_loss = model.classifier_step(pairs, opt)
    torch.testing.assert_close(c_loss, F.binary_cross_entropy_with_logits(
        torch.func.functional_call(model.classifier, dict(zip([n for n, _ in model.classifier.named_parameters()],
                                                              before["classifier"])), (real_x,)),
        torch.cat([p.ya, p.yb])))
    mid = {k: snapshot(getattr(model, k)) for k in parts}
    assert all(torch.equal(a, b) for k in ("encoder", "decoder", "critic") for a, b in zip(before[k], mid[k]))
    assert any(not torch.equal(a, b) for a, b in zip(before["classifier"], mid["classifier"]))
    kids = model.breed(pairs)
    with torch.no_grad():
        expected = (sum(model.rec_loss(p.xa, k["A1"]) + model.rec_loss(p.xb, k["B1"]) for p, k in zip(pairs, kids))
                    + model.gan_loss(model.critic_scores(pairs, kids, detach=False)) + 0.5 * model.class_loss(pairs, kids))
    out = model.generator_step(pairs, kids, opt)
    torch.testing.assert_close(out["generator"], expected, rtol=1e-5, atol=1e-6)
    final = {k: snapshot(getattr(model, k)) for k in parts}
    assert all(torch.equal(a, b) for k in ("critic", "classifier") for a, b in zip(mid[k], final[k]))
    assert all(any(not torch.equal(a, b) for a, b in zip(mid[k], final[k])) for k in ("encoder", "decoder"))


def test_the_residual_penalty_is_each_childs_mean_absolute_change_and_shrinks_it(faces):
    off = build(faces, schedule="cyclic", children="residual")
    pairs = off.pairs(pair_batch(off, faces, 1), 1)
    assert "residual_g" not in off.generator_step(pairs, off.breed(pairs), players(off))  # off by default
    torch.manual_seed(0)
    model = build(faces, schedule="cyclic", children="residual", lambda_residual=2.0, gan="nonsaturating")
    p = pairs[0]
    kids = model.breed(pairs)
    with torch.no_grad():
        # by hand: the mean |·| of each child's change on the [0, 1] image (inputs are in [−1, 1])
        hand = ((kids[0]["B2"] - p.xb).abs().sum() / kids[0]["B2"].numel()
                + (kids[0]["A2"] - p.xa).abs().sum() / kids[0]["A2"].numel()) / 2
        torch.testing.assert_close(model.residual_loss(pairs, kids), hand)
        # a child equal to its parent costs nothing
        assert float(model.residual_loss(pairs, [{**kids[0], "B2": p.xb, "A2": p.xa}])) == 0.0
        expected = (model.rec_loss(p.xa, kids[0]["A1"]) + model.rec_loss(p.xb, kids[0]["B1"])
                    + model.gan_loss(model.critic_scores(pairs, kids, detach=False)) + 2.0 * hand)
    out = model.generator_step(pairs, kids, players(model))
    torch.testing.assert_close(out["generator"], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["residual_g"], hand)
    # descending this term alone shrinks every child's change
    opt = players(model)
    first = float(model.residual_loss(pairs, model.breed(pairs)))
    for _ in range(20):
        opt.step("generator", model.residual_loss(pairs, model.breed(pairs)))
    assert float(model.residual_loss(pairs, model.breed(pairs))) < 0.5 * first


def test_cls_noise_adds_gaussian_noise_to_every_image_the_classifier_sees(faces):
    with pytest.raises(UsageError, match="cls_noise.*lambda_cls"):
        build(faces, cls_noise=0.1)  # noise on a classifier that does not exist
    model = build(faces, schedule="cyclic", children="residual", lambda_cls=1.0, cls_noise=0.3)
    clean = build(faces, schedule="cyclic", children="residual", lambda_cls=1.0)
    clean.load_state_dict(model.state_dict())
    pairs = model.pairs(pair_batch(model, faces, 1), 1)
    p = pairs[0]
    kids = model.breed(pairs)
    x = torch.cat([kids[0]["B2"], kids[0]["A2"]]).detach()
    with torch.no_grad():
        torch.manual_seed(3)
        noisy = model.classify(x)
        torch.manual_seed(3)
        torch.testing.assert_close(noisy, model.classifier(x + 0.3 * torch.randn_like(x)))
        assert not torch.allclose(noisy, clean.classify(x))
        torch.testing.assert_close(clean.classify(x), clean.classifier(x))  # σ = 0: the clean classifier
        # the generator's class loss and C's own step both read through the noise
        yb2, ya2 = model.intended_labels(p)
        torch.manual_seed(4)
        lb, la = model.classifier(x + 0.3 * torch.randn_like(x)).split([len(yb2), len(ya2)])
        hand = F.binary_cross_entropy_with_logits(lb, yb2) + F.binary_cross_entropy_with_logits(la, ya2)
        torch.manual_seed(4)
        torch.testing.assert_close(model.class_loss(pairs, kids), hand)
        real = torch.cat([p.xa, p.xb])
        torch.manual_seed(5)
        hand_c = F.binary_cross_entropy_with_logits(model.classifier(real + 0.3 * torch.randn_like(real)), torch.cat([p.ya, p.yb]))
    torch.manual_seed(5)
    torch.testing.assert_close(model.classifier_step(pairs, players(model)), hand_c)


def _shake(model):
    """An untrained decoder draws nearly one image and mask for every latent: give the pieces an effect."""
    torch.manual_seed(0)
    with torch.no_grad():
        for q in [*model.encoder.parameters(), *model.decoder.parameters()]:
            q.normal_(0, 0.3)
    return model


def test_masked_children_gate_the_residual_change_with_the_mask_drawn_from_the_childs_latent(faces):
    with pytest.raises(UsageError, match="lambda_mask.*children=masked"):
        build(faces, lambda_mask=0.1, children="residual")
    model = _shake(build(faces, schedule="cyclic", children="masked", lambda_mask=0.5, gan="nonsaturating",
                                lr=2e-3))
    pairs = model.pairs(pair_batch(model, faces, 1), 1)
    p, b = pairs[0], len(pairs[0].xa)
    with torch.no_grad():
        latent = decoder_input(model, lambda: model.breed(pairs))
        kids = model.breed(pairs)[0]
        images, masks = model.decoder.split(latent)
    assert masks.shape == (4 * b, 1, *images.shape[2:]) and 0 <= float(masks.min()) and float(masks.max()) <= 1
    a1, b1, a2, b2 = images.split(b)
    ma2, mb2 = masks[2 * b:].split(b)
    torch.testing.assert_close(kids["A1"], a1)  # the reconstruction term's images are the plain decodes
    torch.testing.assert_close(kids["B1"], b1)
    torch.testing.assert_close(kids["A2"], (p.xa + ma2 * (a2 - a1)).clamp(-1, 1))
    torch.testing.assert_close(kids["B2"], (p.xb + mb2 * (b2 - b1)).clamp(-1, 1))
    assert float((ma2 - ma2.mean()).abs().max()) > 1e-3  # a mask per pixel, not one gate per image
    with torch.no_grad():  # a closed mask leaves the parent exactly; an open one is the residual child
        bias = model.decoder.mask_bias.clone()
        model.decoder.mask_bias.fill_(-1e4)
        shut = model.breed(pairs)[0]
        model.decoder.mask_bias.fill_(1e4)
        open_ = model.breed(pairs)[0]
        model.decoder.mask_bias.copy_(bias)
    torch.testing.assert_close(shut["A2"], p.xa)
    torch.testing.assert_close(shut["B2"], p.xb)
    torch.testing.assert_close(open_["A2"], (p.xa + a2 - a1).clamp(-1, 1))
    torch.testing.assert_close(open_["B2"], (p.xb + b2 - b1).clamp(-1, 1))
    # the area price: mean(m_B2) + mean(m_A2), in the generator's total with its weight
    kids_list = model.breed(pairs)
    with torch.no_grad():
        hand = mb2.sum() / mb2.numel() + ma2.sum() / ma2.numel()
        torch.testing.assert_close(model.mask_loss(kids_list), hand)
        expected = (model.rec_loss(p.xa, kids_list[0]["A1"]) + model.rec_loss(p.xb, kids_list[0]["B1"])
                    + model.gan_loss(model.critic_scores(pairs, kids_list, detach=False)) + 0.5 * hand)
    out = model.generator_step(pairs, kids_list, players(model))
    torch.testing.assert_close(out["generator"], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["mask_g"], hand)
    # descending the price alone closes the masks
    opt = players(model)
    first = float(model.mask_loss(model.breed(pairs)))
    for _ in range(20):
        opt.step("generator", model.mask_loss(model.breed(pairs)))
    assert float(model.mask_loss(model.breed(pairs))) < 0.8 * first


def test_masked_edit_output_is_the_input_plus_the_masked_change_as_training_breeds_it(faces):
    model = _shake(build(faces, children="masked", edit_output="masked")).eval()
    a, b = faces.images_at(np.arange(3)), faces.images_at(np.arange(3, 6))
    with torch.no_grad():
        ha, hb = model._latent(a), model._latent(b)
        dec = lambda h: ((model.decoder.split(h)[0] + 1) / 2, model.decoder.split(h)[1])  # noqa: E731
        j = model.attr_names.index("Smiling")
        s = model.piece(j)
        hb2 = hb.clone()
        hb2[:, s] = ha[:, s]
        img, m = dec(hb2)
        want_b = (b + m * (img - dec(hb)[0])).clamp(0, 1)
    torch.testing.assert_close(model.swap(a, b, attributes=["Smiling"]), want_b)
    with torch.no_grad():
        hb0 = hb.clone()
        hb0[:, model.piece(model.attr_names.index("Bangs"))] = 0.0
        img0, m0 = dec(hb0)
    torch.testing.assert_close(model.edit(b, "Bangs", 0.0), (b + m0 * (img0 - dec(hb)[0])).clamp(0, 1))
    # the crossbreed is exactly what children=masked trains; A's own latent gives A itself
    kids = model.crossbreed(a, b, "Smiling")
    torch.testing.assert_close(kids["A1"], a)
    torch.testing.assert_close(kids["B1"], b)
    ones, zeros = torch.ones(3, 3), torch.zeros(3, 3)
    with torch.no_grad():
        bred = model.breed([Pair(j, a * 2 - 1, ones, b * 2 - 1, zeros)])[0]
    torch.testing.assert_close(kids["B2"], (bred["B2"] + 1) / 2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kids["A2"], (bred["A2"] + 1) / 2, rtol=1e-5, atol=1e-5)
    assert (kids["B2"] - b).abs().max() > 0.01  # the edit does change the image


def test_masked_edit_output_without_a_decoder_mask_weighs_the_change_by_its_own_magnitude(faces):
    model = _shake(build(faces, children="residual", skips=1, edit_output="masked")).eval()
    plain = _shake(build(faces, children="residual", skips=1)).eval()
    a, b = faces.images_at(np.arange(3)), faces.images_at(np.arange(3, 6))
    j = model.attr_names.index("Smiling")
    with torch.no_grad():
        (ha, _), (hb, maps_b) = model._features(a), model._features(b)
        hb2 = hb.clone()
        hb2[:, model.piece(j)] = ha[:, model.piece(j)]
        change = model._decode_latent(hb2, maps_b) - model._decode_latent(hb, maps_b)
    torch.testing.assert_close(model.swap(a, b, attributes=["Smiling"]), (b + change_mask(change) * change).clamp(0, 1))
    # the crossbreed gates each child's change from its parent's annihilated decode (A1, B1) the same way
    kids, decoded = model.crossbreed(a, b, "Smiling"), plain.crossbreed(a, b, "Smiling")
    with torch.no_grad():
        h_b1 = hb.clone()
        h_b1[:, model.piece(j)] = 0.0
        b2_change = model._decode_latent(hb2, maps_b) - model._decode_latent(h_b1, maps_b)
    torch.testing.assert_close(kids["B2"], (b + change_mask(b2_change) * b2_change).clamp(0, 1))
    assert not torch.allclose(kids["B2"], decoded["B2"])
    mask = change_mask(b2_change)
    assert float(mask.amax()) == pytest.approx(1.0) and float(mask.amin()) < 0.5  # faded where the change is faint


def test_cli_edit_output_is_chosen_at_edit_time_and_checked(tmp_path, capsys):
    from PIL import Image

    from factorkit.cli import main

    out = tmp_path / "dna"
    tiny = ["--set", "model.width=4", "--set", "model.piece_channels=2", "--set", "model.attributes=Smiling,Eyeglasses",
            "--set", "model.critic_burst=2", "--set", "data.size=2000", "--batch-size", "4", "--num-workers", "0", "--quiet"]
    assert main(["train", "dna-gan", "--data", "faces", "--steps", "2", "--out", str(out), *tiny]) == 0
    png = tmp_path / "face.png"
    x = fk.data.load("faces", "test", size=2000).images_at(np.arange(1))
    Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(png)
    x = torch.from_numpy(np.asarray(Image.open(png)).astype(np.float32) / 255).permute(2, 0, 1)[None]

    def edit(*extra):
        target = tmp_path / f"e{len(list(tmp_path.glob('e*.png')))}.png"
        code = main(["edit", str(out), "--image", str(png), "--attribute", "Smiling", "--value", "0", *extra, "--out", str(target)])
        return code, (np.asarray(Image.open(target)) if target.exists() else None)

    model = fk.load(out)
    assert model.config.edit_output == "decoded"
    _, plain = edit()
    _, residual = edit("--edit-output", "Residual")  # any case, as --set takes it
    decoded = model.edit(x, "Smiling", 0.0)
    want = (x + decoded - model.reconstruct(x)).clamp(0, 1)
    np.testing.assert_array_equal(plain, (decoded[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    np.testing.assert_array_equal(residual, (want[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    assert fk.load(out, edit_output="residual").config.edit_output == "residual"
    assert fk.load(out).config.edit_output == "decoded"  # the run itself is unchanged
    code, image = edit("--edit-output", "sharp")
    assert code == 2 and image is None and "returns its edits as one of decoded, residual, masked" in capsys.readouterr().err
    decoded_change = decoded - model.reconstruct(x)
    _, masked = edit("--edit-output", "masked")  # no decoder mask here: the change's own magnitude
    want = (x + change_mask(decoded_change) * decoded_change).clamp(0, 1)
    np.testing.assert_array_equal(masked, (want[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    ae = tmp_path / "ae"
    assert main(["train", "ae", "--data", "faces", "--steps", "1", "--out", str(ae), "--set", "data.size=2000",
                 "--batch-size", "4", "--num-workers", "0", "--quiet"]) == 0
    assert main(["edit", str(ae), "--image", str(png), "--traverse", "0", "--edit-output", "residual",
                 "--out", str(tmp_path / "t.png")]) == 2
    assert "ae has no edit_output switch" in capsys.readouterr().err and not (tmp_path / "t.png").exists()


def test_skips_join_the_edited_images_encoder_maps_into_the_decoder(faces):
    with pytest.raises(UsageError, match="model.skips=3.*0, 1 or 2"):
        build(faces, skips=3)
    model = _shake(build(faces, skips=2, schedule="cyclic", children="residual")).eval()
    f = model.config.width
    deconvs = [m for m in model.decoder.net if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [d.in_channels for d in deconvs] == [4 * f, 4 * f + 2 * f, 2 * f + f]  # s/4 map, then s/2 map joined
    assert [d.in_channels for d in build(faces, skips=1).decoder.net if isinstance(d, torch.nn.ConvTranspose2d)] == [4 * f, 6 * f, 2 * f]
    a, b = faces.images_at(np.arange(3)), faces.images_at(np.arange(3, 6))
    with torch.no_grad():
        (ha, maps_a), (hb, maps_b) = model._features(a), model._features(b)
        s = faces.info.size
        assert [tuple(m.shape[1:]) for m in maps_a] == [(f, s // 2, s // 2), (2 * f, s // 4, s // 4)]
        torch.testing.assert_close(ha, model._latent(a))
        dec = lambda h, maps: (model.decoder(h, maps) + 1) / 2  # noqa: E731
        # the maps matter, and every operation joins the maps of the image it edits
        assert (dec(ha, maps_a) - dec(ha, maps_b)).abs().max() > 1e-2
        torch.testing.assert_close(model.reconstruct(a), dec(ha, maps_a))
        every = model.chunk_names()
        torch.testing.assert_close(model.swap(a, b, every), dec(ha, maps_b))  # b's maps: not a's reconstruction
        hb0 = hb.clone()
        hb0[:, model.piece(0)] = 0.0
        torch.testing.assert_close(model.edit(b, model.attr_names[0], 0.0), dec(hb0, maps_b))
    with pytest.raises(ValueError, match="skip connections"):
        model.decoder(ha)
    with pytest.raises(UnsupportedOperation, match="decode"):  # a bare code has no image maps to join
        model.decode(model.encode(a))
    assert build(faces).supports("decode") and not model.supports("decode")
    # training breeds each child with its parent's maps; crossbreed is what training breeds
    j = model.attr_names.index("Smiling")
    ones, zeros = torch.ones(3, 3), torch.zeros(3, 3)
    with torch.no_grad():
        bred = model.breed([Pair(j, a * 2 - 1, ones, b * 2 - 1, zeros)])[0]
        hb2 = hb.clone()
        hb2[:, model.piece(j)] = ha[:, model.piece(j)]
        hb1 = hb.clone()
        hb1[:, model.piece(j)] = 0.0
        want_b2 = (b + dec(hb2, maps_b) - dec(hb1, maps_b)).clamp(0, 1)
    torch.testing.assert_close((bred["B2"] + 1) / 2, want_b2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close((bred["A1"] + 1) / 2, dec(ha, maps_a), rtol=1e-5, atol=1e-5)
    kids = model.crossbreed(a, b, "Smiling")
    torch.testing.assert_close(kids["B2"], dec(hb2, maps_b), rtol=1e-5, atol=1e-5)  # edit_output=decoded
    # a training step moves every encoder weight and the decoder's weights on the joined maps
    model.train()
    before = [q.clone() for q in model.encoder.parameters()]
    joined = [deconvs[1].weight[4 * f:].clone(), deconvs[2].weight[2 * f:].clone()]  # (in, out, k, k): the maps' rows
    model.train_step(pair_batch(model, faces, 1), 1, players(model))
    assert all((q - q0).abs().max() > 0 for q, q0 in zip(model.encoder.parameters(), before))
    assert (deconvs[1].weight[4 * f:] - joined[0]).abs().max() > 0 and (deconvs[2].weight[2 * f:] - joined[1]).abs().max() > 0
