"""benchmarks/supervised_editor.py: the supervised oracle that measures whether the bar of "Edits
that convince" is within reach of an editor of the methods' size and budget (results §10)."""

import importlib.util
from pathlib import Path

import pytest
import torch


def _module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "supervised_editor.py"
    spec = importlib.util.spec_from_file_location("supervised_editor", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_balanced_l1_weighs_the_truths_change_and_the_rest_alike():
    """Hand computation on a 2 × 2 image: the true render changes one pixel (channel 0 by 0.5), so
    that pixel's three channels form the inside mean and the other nine values the outside mean."""
    se = _module()
    x = torch.zeros(1, 3, 2, 2)
    target = x.clone()
    target[0, 0, 0, 0] = 0.5
    out = torch.full_like(x, 0.1)
    inside = (0.4 + 0.1 + 0.1) / 3  # |0.1 − 0.5|, then |0.1 − 0| in channels 1 and 2
    outside = 0.1
    assert se.balanced_l1(out, target, x).item() == pytest.approx(0.5 * (inside + outside))
    # a plain L1 would weigh the change by its area: (0.4 + 11 · 0.1) / 12
    assert se.balanced_l1(out, target, x).item() != pytest.approx((0.4 + 1.1) / 12)
    # a change below the threshold counts as kept; with no changed pixel only the outside half remains
    small = x.clone()
    small[0, 0, 0, 0] = 0.01
    err = (out - small).abs().mean().item()
    assert se.balanced_l1(out, small, x).item() == pytest.approx(0.5 * err)


def test_the_oracle_editor_sets_one_attribute_and_reconstructs_the_input():
    se = _module()
    seen = []

    class Stub(torch.nn.Module):
        def forward(self, x, c):
            seen.append(c.clone())
            return x + 2.0

    editor = se.Editor(Stub(), ("A", "B", "C"))
    x = torch.rand(2, 3, 8, 8)
    out = editor.edit(x, "B", torch.tensor([1.0, 0.0]))
    assert torch.equal(seen[-1], torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]))
    assert torch.equal(out, torch.ones_like(x))  # clamped to [0, 1]
    editor.edit(x, "C", 1.0)
    assert torch.equal(seen[-1], torch.tensor([[0.0, 0.0, 1.0]] * 2))
    assert editor.reconstruct(x) is x
    # the real network keeps the image's shape and reads the instruction
    net = se.Oracle(3, f=8).eval()
    c = torch.zeros(2, 3)
    assert net(x, c).shape == x.shape
    c[:, 1] = 1.0
    assert not torch.equal(net(x, c), net(x, torch.zeros(2, 3)))


@pytest.mark.parametrize(("argv", "named"), [
    (["--weights", "w.safetensors", "--loss", "l1"], "--keep and --loss act while training"),
    (["--weights", "w.safetensors", "--keep", "5"], "--keep and --loss act while training"),
    (["--steps", "10", "--keep", "20"], "--keep: every step must lie in 1..--steps (10)"),
    (["--weights", "no-such-file.safetensors"], "no-such-file.safetensors: no such file"),
])
def test_flags_that_would_be_ignored_or_fail_late_are_refused(argv, named, monkeypatch, capsys):
    se = _module()
    monkeypatch.setattr("sys.argv", ["supervised_editor.py", *argv])
    with pytest.raises(SystemExit) as e:
        se.main()
    assert e.value.code == 2 and named in capsys.readouterr().err
