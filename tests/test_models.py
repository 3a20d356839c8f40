"""Tests for medseg_core.models: registry, blocks, SVSnet, U-Net and DeepLabV3+ (tiny inputs, CPU)."""
from __future__ import annotations

import urllib.error

import pytest
import torch
import torch.nn as nn
import torchvision

from medseg_core.models import create_model, list_models
from medseg_core.models.summary import count_flops, count_parameters
from medseg_core.models.blocks import (
    ECA,
    ConvNormAct,
    GlobalMaxChannelAttention,
    SeparableConvNormAct,
    SkipChannelAttention,
    eca_kernel_size,
)
from medseg_core.models.deeplabv3plus import DeepLabV3Plus
from medseg_core.models.svsnet import SVSNet

SVSNET_PARAMS_T4 = 10_187_345  # faithful port of the official Keras model (papers.md)
DEEPLAB_PARAMS_SEED = 5_813_274  # seed model: 2 classes, output stride 16, ECA on skip and ASPP (papers.md)
DEEPLAB_PARAMS_SEPARABLE = 2_713_994  # the same with depthwise-separable ASPP and decoder 3x3 convolutions


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def _seeded_init() -> None:
    torch.manual_seed(0)  # layer initialisation draws from torch's default generator


# --- registry -----------------------------------------------------------------------------------------------


def test_registry_lists_and_builds_all_models() -> None:
    assert {"svsnet", "unet2d", "deeplabv3plus"} <= set(list_models())
    assert isinstance(create_model("svsnet", window_length=2), SVSNet)
    assert isinstance(create_model("deeplabv3plus", eca="none"), DeepLabV3Plus)


def test_unknown_model_name_lists_valid_names() -> None:
    with pytest.raises(KeyError, match="svsnet") as error:
        create_model("svsnett")
    assert "deeplabv3plus" in str(error.value) and "unet2d" in str(error.value)


# --- blocks -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("channels", "kernel"), [(24, 3), (1280, 5), (64, 3), (256, 5)])
def test_eca_adaptive_kernel_size(channels: int, kernel: int) -> None:
    assert eca_kernel_size(channels) == kernel
    assert count_parameters(ECA(channels)) == kernel


def test_eca_matches_its_definition() -> None:
    eca = ECA(24)
    x = _rand(2, 24, 5, 7)
    pooled = x.mean(dim=(2, 3)).unsqueeze(1)  # (B, 1, C)
    expected = x * torch.sigmoid(nn.functional.conv1d(pooled, eca.conv.weight, padding=1)).squeeze(1)[..., None, None]
    torch.testing.assert_close(eca(x), expected)
    assert eca.last_weights.shape == (2, 24) and not eca.last_weights.requires_grad


def test_encoder_attention_uses_global_max_pool() -> None:
    attention = GlobalMaxChannelAttention(4)
    peaks = torch.zeros(1, 4, 2, 6, 6)
    peaks[..., 0, 0, 0] = 1.0
    busier = peaks.clone()
    busier[..., 1, 3, 3] = 0.5  # other means, same maxima
    attention(peaks)
    weights_peaks = attention.last_weights
    out = attention(busier)
    torch.testing.assert_close(attention.last_weights, weights_peaks)
    torch.testing.assert_close(out, busier * weights_peaks[..., None, None, None])


def test_skip_channel_attention_adds_decoder_feature() -> None:
    attention = SkipChannelAttention(8)
    high = _rand(2, 8, 4, 4)
    torch.testing.assert_close(attention(torch.zeros_like(high), high), high)  # out = low * w + high
    low = _rand(2, 8, 4, 4, seed=1)
    out = attention(low, high)
    weights = attention.last_weights
    assert weights.shape == (2, 8) and torch.all((weights > 0) & (weights < 1))
    torch.testing.assert_close(out, low * weights[..., None, None] + high)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv_same_padding_matches_keras_for_even_kernels() -> None:
    block = ConvNormAct(2, 3, 4, kernel_size=2, norm=False, act=False)
    reference = nn.Conv2d(3, 4, 2, padding="same", bias=False)  # PyTorch pads the extra sample at the end, as TF
    reference.weight.data.copy_(block.conv.weight)
    x = _rand(1, 3, 8, 8)
    torch.testing.assert_close(block(x), reference(x))


@pytest.mark.parametrize("frames", [1, 2, 4])
def test_3d_downsampling_keeps_frames_and_halves_height_width(frames: int) -> None:
    down = ConvNormAct(3, 2, 4, kernel_size=(2, 2, 2), stride=(1, 2, 2))
    assert down(_rand(2, 2, frames, 8, 6)).shape == (2, 4, frames, 4, 3)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_separable_conv_is_depthwise_then_pointwise(spatial_dims: int) -> None:
    block = SeparableConvNormAct(spatial_dims, 8, 16, kernel_size=3, dilation=2, bias=True)
    assert block.depthwise.conv.groups == 8 and block.depthwise.conv.bias is None
    assert block.pointwise.conv.kernel_size == (1,) * spatial_dims
    kernel = 3**spatial_dims
    assert count_parameters(block) == 8 * kernel + 8 * 16 + 16 + 2 * 16  # depthwise, pointwise + bias, BN
    assert count_parameters(block) < count_parameters(ConvNormAct(spatial_dims, 8, 16, 3, bias=True))
    x = _rand(2, 8, *([6] * spatial_dims))
    assert block(x).shape == (2, 16, *([6] * spatial_dims))
    assert (block(x) >= 0).all()  # ends in ReLU
    strided = SeparableConvNormAct(spatial_dims, 8, 4, kernel_size=3, stride=2)
    assert strided(x).shape == (2, 4, *([3] * spatial_dims))


# --- SVSnet -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window_length", [1, 2, 4])
def test_svsnet_output_shape(window_length: int) -> None:
    model = create_model("svsnet", window_length=window_length).eval()
    with torch.no_grad():
        assert model(_rand(1, 1, window_length, 64, 128)).shape == (1, 1, 64, 128)


def test_svsnet_parameter_count_matches_official_port() -> None:
    count = count_parameters(SVSNet(window_length=4))
    assert abs(count - SVSNET_PARAMS_T4) <= 0.01 * SVSNET_PARAMS_T4


def _skip_fusions(model: SVSNet) -> list[nn.Conv3d]:
    return [level.skip_fusion for level in model.encoder] + [model.bottleneck_fusion]


def test_svsnet_size_grows_with_window_only_through_skip_fusions() -> None:
    models = {t: SVSNet(window_length=t) for t in (1, 2, 4)}
    per_frame = sum(conv.weight[:, :, 0].numel() for conv in _skip_fusions(models[1]))
    for t, model in models.items():
        assert all(conv.kernel_size == (t, 1, 1) for conv in _skip_fusions(model))
        assert count_parameters(model) - count_parameters(models[1]) == (t - 1) * per_frame
    shapes = {t: {k: v.shape for k, v in m.state_dict().items() if "fusion" not in k} for t, m in models.items()}
    assert shapes[1] == shapes[2] == shapes[4]


def test_svsnet_every_parameter_gets_a_gradient() -> None:
    model = SVSNet(window_length=2).train()
    names_before = [name for name, _ in model.named_parameters()]
    model(_rand(2, 1, 2, 64, 64)).mean().backward()
    assert [name for name, _ in model.named_parameters()] == names_before  # nothing created lazily in forward
    no_grad = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []
    assert all(p.grad.abs().sum() > 0 for name, p in model.named_parameters() if name.startswith("encoder.0"))


def test_svsnet_checkpoint_gives_the_same_outputs_gradients_and_statistics() -> None:
    plain = SVSNet(window_length=2).train()
    checkpointed = SVSNet(window_length=2, checkpoint=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = _rand(2, 1, 2, 64, 64)
    outputs = []
    for model in (plain, checkpointed):
        torch.manual_seed(1)  # the same dropout masks
        logits = model(x)
        logits.square().mean().backward()
        outputs.append(logits.detach())
    torch.testing.assert_close(outputs[0], outputs[1])
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    for (name, b), c in zip(plain.named_buffers(), checkpointed.buffers()):  # running statistics updated once
        torch.testing.assert_close(b, c, msg=name)


def test_svsnet_checkpoint_keeps_fewer_activations_for_backward() -> None:
    def saved_bytes(model: SVSNet) -> int:
        total = 0

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            model(_rand(2, 1, 2, 64, 64)).mean().backward()
        return total

    assert saved_bytes(SVSNet(window_length=2, checkpoint=True).train()) < 0.5 * saved_bytes(
        SVSNet(window_length=2).train())


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 4, 64, 64), r"\(B, 1, T, H, W\) with T = 4.*unsqueeze\(1\)"),
        ((1, 2, 4, 64, 64), r"1 input channel.*\(B, 1, T, H, W\)"),
        ((1, 1, 3, 64, 64), r"window_length=4.*got T=3"),
        ((1, 1, 4, 70, 64), r"\(1, 1, 4, 128, 64\)"),
    ],
)
def test_svsnet_rejects_bad_input(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SVSNet(window_length=4)(torch.zeros(shape))


def test_svsnet_attention_weights_after_forward() -> None:
    model = SVSNet(window_length=2).eval()
    assert model.attention_weights() == {}
    with torch.no_grad():
        model(_rand(3, 1, 2, 64, 64))
    weights = model.attention_weights()
    assert weights["encoder.5.attention"].shape == (3, 256)
    decoder_shapes = [weights[f"decoder.{i}.attention"].shape for i in range(6)]
    assert decoder_shapes == [(3, 256), (3, 128), (3, 64), (3, 32), (3, 16), (3, 8)]
    assert all(not w.requires_grad and ((w >= 0) & (w <= 1)).all() for w in weights.values())


def test_svsnet_eval_is_deterministic() -> None:
    model = SVSNet(window_length=2).eval()
    x = _rand(2, 1, 2, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


# --- U-Net --------------------------------------------------------------------------------------------------


def test_unet_output_shape_and_size() -> None:
    model = create_model("unet2d", in_channels=3, num_classes=4, base_channels=8, depth=3).eval()
    with torch.no_grad():
        assert model(_rand(2, 3, 32, 48)).shape == (2, 4, 32, 48)
    default_count = count_parameters(create_model("unet2d"))
    assert abs(default_count - SVSNET_PARAMS_T4) <= 0.1 * SVSNET_PARAMS_T4  # a baseline of similar size


def test_unet_rejects_bad_input() -> None:
    model = create_model("unet2d", in_channels=1, depth=4)
    with pytest.raises(ValueError, match=r"divisible by 16.*\(1, 1, 48, 64\)"):
        model(torch.zeros(1, 1, 40, 64))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        model(torch.zeros(1, 3, 64, 64))


# --- DeepLabV3+ ---------------------------------------------------------------------------------------------


def test_deeplab_parameter_count_matches_seed() -> None:
    counts = {
        eca: count_parameters(DeepLabV3Plus(num_classes=2, output_stride=16, eca=eca))
        for eca in ("none", "skip", "aspp", "both")
    }
    assert abs(counts["both"] - DEEPLAB_PARAMS_SEED) <= 0.01 * DEEPLAB_PARAMS_SEED
    kernel_skip, kernel_aspp = eca_kernel_size(24), eca_kernel_size(1280)
    assert (kernel_skip, kernel_aspp) == (3, 5)
    assert counts["both"] - counts["none"] == kernel_skip + kernel_aspp
    assert counts["skip"] - counts["none"] == kernel_skip and counts["aspp"] - counts["none"] == kernel_aspp


def test_deeplab_default_is_the_dense_seed_model() -> None:
    default, dense = DeepLabV3Plus(), DeepLabV3Plus(separable=False)
    assert count_parameters(default) == count_parameters(dense) == DEEPLAB_PARAMS_SEED
    assert {k: v.shape for k, v in default.state_dict().items()} == {k: v.shape for k, v in dense.state_dict().items()}
    assert not any(isinstance(m, SeparableConvNormAct) for m in default.modules())


def test_deeplab_separable_is_smaller_and_cheaper() -> None:
    dense = DeepLabV3Plus(num_classes=2, output_stride=16, eca="both")
    separable = create_model("deeplabv3plus", num_classes=2, output_stride=16, eca="both", separable=True)
    assert separable.model_spec["kwargs"]["separable"] is True
    assert count_parameters(separable) == DEEPLAB_PARAMS_SEPARABLE < count_parameters(dense)
    blocks = [separable.aspp.branches[1], separable.aspp.branches[2], separable.aspp.branches[3],
              separable.decoder[0], separable.decoder[2]]
    assert all(isinstance(block, SeparableConvNormAct) for block in blocks)
    assert [block.depthwise.conv.dilation for block in blocks[:3]] == [(6, 6), (12, 12), (18, 18)]
    assert isinstance(separable.aspp.branches[0], ConvNormAct)  # the 1x1 branch stays a plain conv
    x = _rand(1, 3, 64, 64)
    assert count_flops(separable, x) < 0.3 * count_flops(dense, x)
    backbone = {k: v.shape for k, v in separable.state_dict().items() if k.startswith("backbone.")}
    assert backbone == {k: v.shape for k, v in dense.state_dict().items() if k.startswith("backbone.")}


@pytest.mark.parametrize("output_stride", [8, 16])
def test_deeplab_separable_forward_and_gradients(output_stride: int) -> None:
    model = DeepLabV3Plus(num_classes=3, output_stride=output_stride, separable=True).train()
    logits = model(_rand(2, 3, 64, 96))
    assert logits.shape == (2, 3, 64, 96)
    logits.mean().backward()
    no_grad = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []
    with torch.no_grad():
        assert model.eval()(_rand(1, 3, 48, 80)).shape == (1, 3, 48, 80)


def test_deeplab_output_stride_changes_features_not_output() -> None:
    x = _rand(2, 3, 64, 96)
    outputs = {}
    for output_stride in (8, 16):
        model = DeepLabV3Plus(num_classes=3, output_stride=output_stride).eval()
        with torch.no_grad():
            assert model.backbone(x).shape == (2, 320, 64 // output_stride, 96 // output_stride)
            assert model.backbone[:4](x).shape == (2, 24, 16, 24)
            outputs[output_stride] = model(x)
    assert outputs[8].shape == outputs[16].shape == (2, 3, 64, 96)


def test_deeplab_dilation_surgery() -> None:
    def dilations(model: DeepLabV3Plus, block: int) -> set[tuple[int, int]]:
        convs = [m for m in model.backbone[block].modules() if isinstance(m, nn.Conv2d)]
        return {conv.dilation for conv in convs if conv.kernel_size == (3, 3)}

    os16, os8 = DeepLabV3Plus(output_stride=16), DeepLabV3Plus(output_stride=8)
    assert dilations(os16, 13) == {(1, 1)} and dilations(os16, 15) == {(2, 2)}
    assert dilations(os8, 8) == {(2, 2)} and dilations(os8, 15) == {(4, 4)}
    assert all(m.stride == (1, 1) for m in os16.backbone[14:].modules() if isinstance(m, nn.Conv2d))
    assert all(m.stride == (1, 1) for m in os8.backbone[7:].modules() if isinstance(m, nn.Conv2d))


def test_deeplab_eca_placement_and_attention_weights() -> None:
    assert isinstance(DeepLabV3Plus(eca="skip").aspp.attention, nn.Identity)
    assert isinstance(DeepLabV3Plus(eca="aspp").low_level_attention, nn.Identity)
    model = DeepLabV3Plus(eca="both").eval()
    with torch.no_grad():
        model(_rand(2, 3, 64, 64))
    shapes = {name: tuple(w.shape) for name, w in model.attention_weights().items()}
    assert shapes == {"low_level_attention": (2, 24), "aspp.attention": (2, 1280)}
    assert model.attention_groups() == {"aspp.attention": ["1×1", "3×3 rate 6", "3×3 rate 12", "3×3 rate 18",
                                                           "image pooling"]}
    assert DeepLabV3Plus(eca="aspp", output_stride=8).attention_groups()["aspp.attention"][1:4] == [
        "3×3 rate 12", "3×3 rate 24", "3×3 rate 36"]
    assert DeepLabV3Plus(eca="skip").attention_groups() == {}
    with pytest.raises(ValueError, match="eca must be one of"):
        DeepLabV3Plus(eca="decoder")


def test_deeplab_rejects_bad_input() -> None:
    model = DeepLabV3Plus()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*expand"):
        model(torch.zeros(2, 1, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*unsqueeze\(0\)"):
        model(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="batch of at least 2"):
        model.train()(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="output_stride must be 8 or 16"):
        DeepLabV3Plus(output_stride=32)


def test_deeplab_eval_is_deterministic() -> None:
    model = DeepLabV3Plus().eval()
    x = _rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


def test_deeplab_loads_torchvision_mobilenet_file(tmp_path) -> None:
    state = torchvision.models.mobilenet_v2(weights=None).state_dict()
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(state, path)
    model = DeepLabV3Plus(pretrained=path)
    report = model.weight_report
    assert report is not None and report.source == str(path)
    assert {"low_level_attention.conv.weight", "aspp.attention.conv.weight"} <= set(report.missing)
    assert "classifier.1.weight" in report.unexpected and "features.18.0.weight" in report.unexpected
    assert not any(key.startswith("backbone.") for key in report.missing) and report.mismatched == []
    model_state = model.state_dict()
    backbone_keys = [key for key in state if key.startswith("features.") and int(key.split(".")[1]) < 18]
    assert len(report.loaded) == len(backbone_keys)
    assert all(torch.equal(model_state["backbone." + key[len("features."):]], state[key]) for key in backbone_keys)


def test_deeplab_warns_when_checkpoint_lacks_attention_layers(tmp_path) -> None:
    path = tmp_path / "deeplab_no_eca.pth"
    torch.save(DeepLabV3Plus(num_classes=2, eca="none").state_dict(), path)
    with pytest.warns(UserWarning, match="only partly loaded.*low_level_attention"):
        report = DeepLabV3Plus(num_classes=2, eca="both").load_pretrained(path)
    assert sorted(report.missing) == ["aspp.attention.conv.weight", "low_level_attention.conv.weight"]
    assert report.unexpected == [] and report.mismatched == []


def test_deeplab_rejects_unrelated_weights(tmp_path) -> None:
    path = tmp_path / "other.pth"
    torch.save(nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(ValueError, match="no tensor .* matches"):
        DeepLabV3Plus(pretrained=path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DeepLabV3Plus(pretrained=tmp_path / "missing.pth")


def test_deeplab_offline_imagenet_error_is_actionable(monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models.MobileNet_V2_Weights, "get_state_dict", offline)
    with pytest.raises(RuntimeError) as error:
        DeepLabV3Plus(pretrained="imagenet")
    message = str(error.value)
    assert torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.url in message
    assert "name resolution" in message and "checkpoints" in message and "pretrained=" in message


def _branch_output_from_centre_tap_only(model: DeepLabV3Plus, branch: int, x: torch.Tensor) -> bool:
    """True when a dilated ASPP branch gives what its centre weight alone (a 1x1 convolution) gives."""
    conv = model.aspp.branches[branch].conv
    centre = torch.nn.functional.conv2d(x, conv.weight[:, :, 1:2, 1:2], conv.bias)
    return torch.allclose(conv(x), centre, atol=1e-5)


def test_aspp_taps_find_the_branches_that_read_only_padding() -> None:
    from medseg_core.models.deeplabv3plus import aspp_taps, scaled_atrous_rates

    paper_96 = aspp_taps(96)  # 6x6 feature map: rates 6, 12 and 18 reach past it from every position
    assert [row["is_1x1"] for row in paper_96] == [True, True, True]
    assert all(row["image_taps"] == pytest.approx(1 / 9) for row in paper_96)
    assert [row["is_1x1"] for row in aspp_taps(128)] == [False, True, True]
    for size in (64, 96, 128, 256):
        rates = scaled_atrous_rates(size)
        assert not any(row["is_1x1"] for row in aspp_taps(size, 16, rates)) and list(rates) == sorted(rates)
    assert scaled_atrous_rates(513) == (6, 12, 18)  # DeepLab's own crop size keeps DeepLab's rates
    model = DeepLabV3Plus(atrous_rates=scaled_atrous_rates(96), eca="none").eval()
    paper = DeepLabV3Plus(eca="none").eval()
    features = torch.randn(1, 320, 6, 6)
    for branch, row in enumerate(aspp_taps(96), start=1):  # the tap table agrees with the convolutions
        assert _branch_output_from_centre_tap_only(paper, branch, features) == row["is_1x1"]
    assert not any(_branch_output_from_centre_tap_only(model, branch, features) for branch in (1, 2, 3))


def test_cpu_profiles_scale_aspp_rates_and_paper_keeps_them() -> None:
    from medseg_core.config import get_profile
    from medseg_core.models.deeplabv3plus import aspp_taps
    from medseg_core.tasks import get_task

    oct_task = get_task("oct")
    for name in ("smoke", "cpu"):
        for profile in (get_profile(name), get_profile(name).ablation_profile()):
            kwargs = oct_task.model_kwargs(profile, "deeplabv3plus")
            assert not any(row["is_1x1"] for row in aspp_taps(profile.oct.image_size, 16, kwargs["atrous_rates"]))
    assert "atrous_rates" not in oct_task.model_kwargs(get_profile("paper"), "deeplabv3plus")
    assert create_model("deeplabv3plus", **oct_task.model_kwargs(get_profile("paper"), "deeplabv3plus")).aspp.atrous_rates == (6, 12, 18)


def test_deeplab_takes_grey_input_and_adapts_rgb_weights_by_summing_them(tmp_path) -> None:
    from medseg_core.models.deeplabv3plus import adapt_input_weight

    rgb = DeepLabV3Plus(eca="none").eval()
    grey = DeepLabV3Plus(in_channels=1, eca="none").eval()
    assert grey.backbone[0][0].weight.shape[1] == 1 and grey(torch.rand(1, 1, 64, 64)).shape == (1, 2, 64, 64)
    torch.save(rgb.state_dict(), tmp_path / "rgb.pt")
    report = grey.load_pretrained(tmp_path / "rgb.pt")
    assert "backbone.0.0.weight" in report.loaded and not report.mismatched
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():  # the grey model on g gives what the RGB model gives on g copied to three channels
        torch.testing.assert_close(grey(image), rgb(image.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)
    weight = torch.randn(8, 3, 3, 3)
    assert adapt_input_weight(weight, 4).shape == (8, 4, 3, 3)
    torch.testing.assert_close(adapt_input_weight(weight, 6).sum(1), weight.sum(1))  # activation size kept
    with pytest.raises(ValueError, match="expects 1 input channel"):
        grey(torch.rand(1, 3, 64, 64))
