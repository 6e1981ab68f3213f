import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import factorkit as fk
from factorkit.config import RunConfig, TrainConfig
from factorkit.data.shapes2d import Options
from factorkit.errors import NonFiniteLoss, UsageError
from factorkit.train import checkpoint as ckpt
from factorkit.train.distributed import Dist
from factorkit.train.trainer import InfiniteBatchSampler, Players, Trainer

from .toy import TwoPlayer, tiny_dataset


def toy_run(tmp_path, steps=9, resume=False, out="run", **cfg):
    ds = tiny_dataset()
    torch.manual_seed(0)
    model = TwoPlayer(TwoPlayer.Config(**cfg), ds.info)
    train = TrainConfig(steps=steps, batch_size=16, num_workers=0, checkpoint_every=5, log_every=1, image_every=0)
    rc = RunConfig("toy2", "shapes2d", model.config, Options(), train)
    result = Trainer(model, ds, rc, tmp_path / out, resume=resume, progress=False).fit()
    return model, result


def test_two_players_and_critic_schedule(tmp_path):
    model, result = toy_run(tmp_path, steps=9)
    critic_steps = [s for who, s in model.calls if who == "critic"]
    # steps 0, 3, 6 run 4 critic updates, the others 1: 3*4 + 6*1
    assert len(critic_steps) == 18
    assert [s for who, s in model.calls if who == "generator"] == list(range(9))
    assert critic_steps.count(3) == 4 and critic_steps.count(4) == 1
    # order inside a step: all critic updates first, then the generator
    assert model.calls[:5] == [("critic", 0)] * 4 + [("generator", 0)]
    log = [json.loads(line) for line in (result.out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 10))
    assert set(log[0]["losses"]) == {"critic", "generator"}


def test_each_player_step_touches_only_its_parameters():
    ds = tiny_dataset()
    model = TwoPlayer(TwoPlayer.Config(), ds.info)
    opts = model.configure_optimizers()
    players = Players(opts, {n: None for n in opts}, Dist(), fetch=None)
    x = torch.rand(4, 64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # the generator's loss flows through the critic, but only the generator may move
    players.step("generator", -model.critic(model.gen(x)).mean())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("critic"))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("gen"))
    assert all(p.grad is None for p in model.critic.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    players.step("critic", model.critic(model.gen(x)).mean())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("gen"))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("critic"))
    with pytest.raises(KeyError, match="no optimizer named 'decoder'"):
        players.step("decoder", x.sum())


def test_nan_stops_with_loss_and_step_and_keeps_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLoss) as err:
        toy_run(tmp_path, steps=20, nan_at=7)
    msg = str(err.value)
    assert "'generator'" in msg and "step 7" in msg and "step-5" in msg
    assert ckpt.list_checkpoints(tmp_path / "run" / "checkpoints") == [5]
    ckpt.read_checkpoint(tmp_path / "run" / "checkpoints", 5)  # verifies
    assert not (tmp_path / "run" / "model.safetensors").exists()
    last = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "non-finite loss"


def test_in_process_resume_is_bit_identical(tmp_path):
    full, _ = toy_run(tmp_path, steps=12, out="full")
    toy_run(tmp_path, steps=7, out="part")  # ends with a checkpoint at 7
    resumed, result = toy_run(tmp_path, steps=12, out="part", resume=True)
    assert result.resumed_from == 7
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    steps = [json.loads(line)["step"] for line in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))


def test_resume_refuses_empty_and_overwrite(tmp_path):
    with pytest.raises(UsageError, match="no complete checkpoint"):
        toy_run(tmp_path, steps=3, resume=True, out="empty")
    toy_run(tmp_path, steps=5, out="done")
    with pytest.raises(UsageError, match="already holds a run"):
        toy_run(tmp_path, steps=5, out="done")


def test_sampler_resumes_and_shards():
    full = InfiniteBatchSampler(20, 4, seed=1)
    it = iter(full)
    batches = [next(it) for _ in range(12)]  # crosses an epoch boundary (5 per epoch)
    it2 = iter(InfiniteBatchSampler(20, 4, seed=1, start=7))
    assert [next(it2) for _ in range(5)] == batches[7:]
    assert sorted(sum(batches[:5], [])) == list(range(20))
    r0 = iter(InfiniteBatchSampler(20, 2, seed=1, rank=0, world=2))
    r1 = iter(InfiniteBatchSampler(20, 2, seed=1, rank=1, world=2))
    for b in batches[:5]:
        assert next(r0) + next(r1) == b
    with pytest.raises(UsageError, match="fewer than one batch"):
        InfiniteBatchSampler(3, 4, seed=0)


def test_state_encoding_round_trip():
    from collections import Counter

    state = {"a": (1, 2.5, None), 3: [torch.arange(3), np.arange(4, dtype=np.uint32)], "c": Counter({10: 2}), "f": float("inf")}
    tensors = {}
    enc = ckpt.encode_state(state, tensors, "s")
    json.dumps(enc)
    dec = ckpt.decode_state(json.loads(json.dumps(enc)), tensors)
    assert dec["a"] == (1, 2.5, None) and dec["c"] == Counter({10: 2}) and dec["f"] == float("inf")
    assert torch.equal(dec[3][0], torch.arange(3)) and dec[3][1].dtype == np.uint32


def test_fk_load_rebuilds_model(tmp_path):
    ds = fk.data.load("sklearn-digits")
    model = fk.models.build("ae", ds, latent_dim=4)
    fk.train(model, ds, steps=6, out=tmp_path / "r", batch_size=16, num_workers=0, progress=False)
    loaded = fk.load(tmp_path / "r")
    assert loaded.config.latent_dim == 4 and not loaded.training
    x = ds.images_at([0, 1, 2])
    model.eval()
    torch.testing.assert_close(loaded.reconstruct(x), model.reconstruct(x), rtol=0, atol=0)
    (tmp_path / "r" / "model.safetensors").unlink()  # falls back to the newest checkpoint
    torch.testing.assert_close(fk.load(tmp_path / "r").reconstruct(x), model.reconstruct(x), rtol=0, atol=0)


# --- through the CLI, in real processes ----------------------------------------------------------

TRAIN = ["train", "betavae", "--data", "shapes2d", "--batch-size", "8", "--checkpoint-every", "10",
         "--num-workers", "1", "--quiet", "--set", "train.log_every=5", "--set", "train.image_every=20"]


def _weights(run):
    return load_file(str(run / "model.safetensors"))


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_sigkill_resume_and_truncated_checkpoint_fallback(tmp_path, cli):
    full = tmp_path / "full"
    r = cli(*TRAIN, "--steps", "40", "--out", str(full))
    assert r.returncode == 0, r.stderr

    # killed with SIGKILL once a checkpoint exists, then resumed
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "factorkit", *TRAIN, "--steps", "40", "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "step-20.json").exists():
        assert proc.poll() is None, "finished before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "model.safetensors").exists()
    r = cli(*TRAIN, "--steps", "40", "--out", str(killed), "--resume")
    assert r.returncode == 0, r.stderr
    _same(_weights(full), _weights(killed))
    steps = [json.loads(line)["step"] for line in (killed / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(5, 41, 5))

    # a truncated newest checkpoint is reported and the previous one is used
    short = tmp_path / "short"
    assert cli(*TRAIN, "--steps", "30", "--out", str(short)).returncode == 0
    newest = short / "checkpoints" / "step-30.safetensors"
    newest.write_bytes(newest.read_bytes()[:1000])
    r = cli(*TRAIN, "--steps", "40", "--out", str(short), "--resume")
    assert r.returncode == 0, r.stderr
    assert "skipping checkpoint step-30" in r.stderr and "truncated" in r.stderr
    _same(_weights(full), _weights(short))


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path, cli):
    args = ["ae", "--data", "shapes2d", "--device", "cpu", "--steps", "20", "--num-workers", "0", "--quiet"]
    two = tmp_path / "two"
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "factorkit", "train", *args, "--batch-size", "8", "--out", str(two)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in two.iterdir()) == ["checkpoints", "config.yaml", "dataset.json", "log.jsonl", "model.safetensors", "tb"]
    meta = json.loads((two / "checkpoints" / "step-20.json").read_text())
    assert meta["world"] == 2 and meta["batches"] == 20
    one = tmp_path / "one"
    r = cli("train", *args, "--batch-size", "16", "--out", str(one))
    assert r.returncode == 0, r.stderr
    a, b = _weights(two), _weights(one)
    for k in a:  # averaged gradients of 2×8 = the gradient of one batch of 16
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert not list(tmp_path.glob("runs"))  # only the named run dir was written
