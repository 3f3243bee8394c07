import pytest
import torch
import torch.nn.functional as F
from torch import nn

from perceptlab.nets.discriminators import SRGANDiscriminator
from perceptlab.nets.layers import SplitKernelConv2d
from perceptlab.nets.sr import SR_NETS, build_sr_net, list_sr_nets, register_sr_net
from perceptlab.ops.resize import imresize

# Networks with any integer scale are smoke-tested at these.
ANY_SCALES = (2, 3, 4)
CASES = [(name, scale) for name, info in SR_NETS.items() for scale in (info.scales or ANY_SCALES)]


pytestmark = pytest.mark.usefixtures("one_thread")


def n_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# ---------------------------------------------------------------- registry


def test_registry_lists_every_network():
    assert list_sr_nets() == ["bicubic", "srcnn", "johnson", "srresnet", "perceptsr"]
    for name, info in SR_NETS.items():
        assert info.name == name and info.description and info.reference


@pytest.mark.parametrize("name, scale", CASES)
def test_forward_backward_every_network(name, scale):
    net = build_sr_net(name, scale=scale)
    assert net.name == name and net.scale == scale
    lr = torch.rand(2, 3, 8, 8, requires_grad=True)
    sr = net(lr)
    assert sr.shape == (2, 3, 8 * scale, 8 * scale)
    # Random weights: a plain sum can cancel through batch norm.
    (sr * torch.randn_like(sr)).sum().backward()
    assert lr.grad is not None and lr.grad.abs().sum() > 0
    for param_name, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name


def test_names_are_unique():
    with pytest.raises(ValueError, match="already registered"):
        register_sr_net("bicubic", scales=None, description="", reference="")(nn.Identity)


def test_unknown_name_and_bad_scales_raise():
    with pytest.raises(ValueError, match="unknown SR network 'edsr'.*srresnet"):
        build_sr_net("edsr")
    with pytest.raises(ValueError, match="supports scales 2, 4, 8, got 3"):
        build_sr_net("srresnet", scale=3)
    with pytest.raises(ValueError, match="any integer >= 2, got 1"):
        build_sr_net("bicubic", scale=1)
    with pytest.raises(TypeError, match="scale must be an int"):
        build_sr_net("srcnn", scale=2.0)
    with pytest.raises(ValueError, match="3 channels"):
        build_sr_net("johnson")(torch.rand(1, 1, 8, 8))


def test_bicubic_has_no_parameters_and_is_imresize():
    net = build_sr_net("bicubic", scale=3)
    assert n_parameters(net) == 0
    lr = torch.rand(1, 3, 10, 12)
    assert torch.equal(net(lr), imresize(lr, scale=3))


def test_johnson_output_is_in_unit_range():
    sr = build_sr_net("johnson", scale=4)(torch.rand(2, 3, 8, 8))
    assert sr.min() > 0 and sr.max() < 1


def test_parameter_counts():
    # SRResNet x4: head conv 3*64*81 + 64 and PReLU 64; 16 blocks of 2 * (64*64*9 + 128 BN) + 64 PReLU = 74,048;
    # trunk end 64*64*9 + 128; 2 upsampling stages of 64*256*9 + 256 + 64 PReLU; output 64*3*81 + 3.
    # 1,548,547: the "1.5M parameters" usually quoted for SRResNet.
    assert n_parameters(build_sr_net("srresnet", scale=4)) == 1_548_547
    # SRCNN 9-5-5 on RGB: 3*64*81 + 64, 64*32*25 + 32, 32*3*25 + 3 (57,184 for the paper's 1-channel model).
    assert n_parameters(build_sr_net("srcnn", scale=3)) == 69_251
    # Johnson x4: input conv 3*64*81, ten 3x3 convs of 64*64*9 (8 in the residual blocks, 2 upsampling),
    # 11 batch norms of 2*64, output conv 64*3*81 + 3: about 0.4M (no bias before a batch norm).
    assert n_parameters(build_sr_net("johnson", scale=4)) == 3 * 64 * 81 + 10 * 36_864 + 11 * 128 + 64 * 3 * 81 + 3


# ---------------------------------------------------------------- SRGAN discriminator


@pytest.fixture(scope="module")
def discriminator():
    # 23.6M parameters: built once for the tests below.
    torch.manual_seed(0)
    return SRGANDiscriminator()


def test_srgan_discriminator_parameter_count(discriminator):
    # 4.7M in the convolutions, 18.9M in the 512*6*6 -> 1024 dense layer.
    assert n_parameters(discriminator) == 23_563_649


@pytest.mark.parametrize("size", [24, 96])
def test_srgan_discriminator_any_size(discriminator, size):
    discriminator.zero_grad(set_to_none=True)
    x = torch.rand(2, 3, size, size, requires_grad=True)
    logits = discriminator(x)
    assert logits.shape == (2, 1)
    (logits * torch.randn_like(logits)).sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in discriminator.parameters())


def test_srgan_discriminator_bad_input_raises(discriminator):
    with pytest.raises(ValueError, match="3 channels"):
        discriminator(torch.rand(1, 1, 96, 96))


# ---------------------------------------------------------------- SplitKernelConv2d


@pytest.mark.parametrize(
    "shape, kernel_size",
    [((2, 64, 13, 21), 9), ((3, 5, 7, 11), 9), ((1, 4, 2, 3), 9), ((2, 6, 10, 9), 15), ((2, 5, 6, 7), 3)],
)
def test_split_kernel_conv_equals_conv2d(shape, kernel_size):
    conv = SplitKernelConv2d(shape[1], 3, kernel_size)
    x = torch.rand(shape, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    weight, bias = (conv.weight.detach().clone().requires_grad_(), conv.bias.detach().clone().requires_grad_())
    y = conv(x)
    y_ref = F.conv2d(x_ref, weight, bias, padding=kernel_size // 2)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    upstream = torch.randn_like(y)
    (y * upstream).sum().backward()
    (y_ref * upstream).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.weight.grad, weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.bias.grad, bias.grad, rtol=1e-5, atol=1e-5)


def test_split_kernel_conv_channels_last_and_float64():
    conv = SplitKernelConv2d(8, 3, 9).double()
    x = torch.rand(2, 8, 12, 17, dtype=torch.float64)
    expected = F.conv2d(x, conv.weight, conv.bias, padding=4)
    torch.testing.assert_close(conv(x), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(conv(x.contiguous(memory_format=torch.channels_last)), expected, rtol=0, atol=1e-12)


def test_split_kernel_conv_state_dict_is_conv2d():
    split = SplitKernelConv2d(64, 3, 9)
    plain = nn.Conv2d(64, 3, 9, padding=4)
    assert {k: v.shape for k, v in split.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    assert split.weight.shape == (3, 64, 9, 9) and split.bias.shape == (3,)
    plain.load_state_dict(split.state_dict())
    x = torch.rand(1, 64, 16, 16)
    torch.testing.assert_close(split(x), plain(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [8, 5, 6])
def test_split_kernel_conv_bad_kernel_raises(kernel_size):
    with pytest.raises(ValueError, match="odd multiple of 3"):
        SplitKernelConv2d(4, 3, kernel_size)


@pytest.mark.parametrize("size", [(8, 12), (20, 16)])
def test_split_kernel_inference_formulation_equals_the_convolution(size, monkeypatch):
    # Without autograd on channels-last input with sides a multiple of 4, the layer takes its
    # stride-4 block formulation; it must still be the 9x9 "same" convolution.
    conv = SplitKernelConv2d(16, 3, 9)
    calls = []
    blocks = conv.forward_blocks
    monkeypatch.setattr(conv, "forward_blocks", lambda *a, **k: calls.append(1) or blocks(*a, **k))
    x = torch.rand(2, 16, *size).to(memory_format=torch.channels_last)
    with torch.no_grad():
        out = conv(x)
        reference = F.conv2d(x.contiguous(), conv.weight, conv.bias, padding=4)
    assert calls == [1], "the block formulation was not taken"
    assert out.shape == reference.shape
    assert torch.allclose(out, reference, atol=1e-5)
    # With gradients (training) the split-kernel path runs, and agrees too.
    assert torch.allclose(conv(x), reference, atol=1e-5) and calls == [1]
