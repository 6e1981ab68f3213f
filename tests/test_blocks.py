"""nn/blocks.py: the models rebuilt on it keep their layer lists — the parameter counts, output
shapes and state-dict sizes below were measured on the code before the rebuild (commit 1b88d40),
so a run trained then still loads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import factorkit as fk
from factorkit.nn import blocks as B

# case → (parameters per child module, code shape, decoded shape, state-dict entries) for 2 images
BEFORE = {
    'mddae/faces/fast':
        ({'encoder': 388775, 'decoder': 392579}, (2, 39), (2, 3, 64, 64), 64),
    'mddae/faces/paper':
        ({'encoder': 76210335, 'decoder': 76276163}, (2, 1007), (2, 3, 64, 64), 59),
    'mddae/sklearn-digits/fast':
        ({'encoder': 1088730, 'decoder': 1101665}, (2, 26), (2, 1, 32, 32), 38),
    'mddae-ae/faces/fast':
        ({'encoder': 388775, 'decoder': 392579}, (2, 39), (2, 3, 64, 64), 64),
    'mixing/faces/fast':
        ({'encoder': 236896, 'decoder': 557795, 'discriminator': 40097, 'classifier': 572748}, (2, 64), (2, 3, 64, 64), 83),
    'mixing/faces/paper':
        ({'encoder': 4959872, 'decoder': 11012995, 'discriminator': 537089, 'classifier': 35952680}, (2, 512), (2, 3, 64, 64), 93),
    'mixing/shapes2d/fast':
        ({'encoder': 236608, 'decoder': 557537, 'discriminator': 39809, 'classifier': 568140}, (2, 64), (2, 1, 64, 64), 83),
    'mixing/sklearn-digits/fast':
        ({'encoder': 88896, 'decoder': 295265, 'discriminator': 33665, 'classifier': 371532}, (2, 64), (2, 1, 32, 32), 77),
    'ae/faces/fast':
        ({'encoder': 381386, 'decoder': 382339}, (2, 10), (2, 3, 64, 64), 24),
    'betavae/shapes2d/fast':
        ({'encoder': 382932, 'decoder': 381313}, (2, 10), (2, 1, 64, 64), 24),
    "mixing/faces/fast/{'d_norm': 'batch'}":
        ({'encoder': 236896, 'decoder': 557795, 'discriminator': 40577, 'classifier': 572748}, (2, 64), (2, 3, 64, 64), 93),
}


@pytest.mark.parametrize("case", list(BEFORE))
def test_models_keep_their_layer_lists(case):
    name, data, preset, *extra = case.split("/")
    kw = {"d_norm": "batch"} if extra else {}
    info = fk.data.describe(data)
    model = fk.models.build(name, info, preset=preset, **kw).eval()
    params, code_shape, out_shape, keys = BEFORE[case]
    assert {k: sum(p.numel() for p in v.parameters()) for k, v in model.named_children()} == params
    x = torch.rand(2, *info.image_shape)
    with torch.no_grad():
        code = model.encode(x)
        assert tuple(code.tensor.shape) == code_shape
        assert tuple(model.decode(code).shape) == out_shape
    assert len(model.state_dict()) == keys


def test_parameter_names_are_those_of_older_runs():
    info = fk.data.describe("faces")
    names = set(fk.models.build("mddae", info).state_dict())
    assert {"encoder.conv.0.weight", "encoder.conv.1.running_mean", "encoder.fc.1.weight", "decoder.fc.1.weight",
            "decoder.deconv.0.weight"} <= names
    names = set(fk.models.build("mixing", info).state_dict())
    assert {"encoder.conv.0.weight", "decoder.net.1.weight", "discriminator.net.0.parametrizations.weight.original",
            "classifier.features.2.running_var", "classifier.head.1.weight"} <= names


def test_block_options_give_the_layers_they_name():
    layers = B.conv_block(3, 8, 4, 2, 1, norm="batch", act="lrelu")
    assert [type(m) for m in layers] == [nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU] and layers[2].negative_slope == 0.2
    layers = B.conv_block(3, 8, 3, norm="batch", act="relu", order="conv-act-norm", bias=False)
    assert [type(m) for m in layers] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d] and layers[0].bias is None
    assert [type(m) for m in B.conv_block(3, 8, 3)] == [nn.Conv2d]  # no norm, no activation: no layers
    assert [type(m) for m in B.conv_block(3, 8, 3, norm="none", act="none")] == [nn.Conv2d, nn.Identity, nn.Identity]
    sn = B.conv_block(3, 8, 3, spectral=True)[0]
    assert nn.utils.parametrize.is_parametrized(sn, "weight")
    assert [type(m) for m in B.linear_block(4, 2, norm="batch", act="tanh", dropout=0.5)] == \
        [nn.Linear, nn.BatchNorm1d, nn.Tanh, nn.Dropout]
    with pytest.raises(ValueError, match="unknown activation 'elu'"):
        B.activation("elu")
    with pytest.raises(ValueError, match="unknown normalisation"):
        B.norm_layer("group", 4)


def test_stacks_and_residual_blocks_shapes():
    x = torch.rand(2, 3, 32, 32)
    down = nn.Sequential(*B.conv_stack(3, (16, 32, 64)))
    assert down(x).shape == (2, 64, 4, 4)
    up = nn.Sequential(*B.deconv_stack((64, 32, 16), 3))
    assert up(down(x)).shape == (2, 3, 32, 32)
    same = B.ResidualBlock(16)
    h = torch.randn(2, 16, 8, 8)
    assert isinstance(same.skip, nn.Identity) and same(h).shape == h.shape
    assert B.ResidualBlock(16, 32, stride=2)(h).shape == (2, 32, 4, 4)
    assert B.ResidualBlock(16, 8, stride=2, transpose=True)(h).shape == (2, 8, 16, 16)
    # the residual path: with the body's last norm zeroed, the block is act(skip(x))
    block = B.ResidualBlock(16).eval()
    with torch.no_grad():
        block.body[-1].weight.zero_()
        block.body[-1].bias.zero_()
    torch.testing.assert_close(block(h), torch.relu(h))


def test_output_padding_doubles_a_k3_transposed_conv_and_is_refused_on_plain_convs():
    up = B.conv_block(8, 4, 3, 2, 1, transpose=True, output_padding=1)[0]
    assert up(torch.rand(2, 8, 4, 4)).shape == (2, 4, 8, 8)
    assert B.conv_block(8, 4, 3, 2, 1, transpose=True)[0](torch.rand(2, 8, 4, 4)).shape == (2, 4, 7, 7)
    with pytest.raises(ValueError, match="transposed convolutions only"):
        B.conv_block(8, 4, 3, 2, 1, output_padding=1)
