"""course_utils.models against torchvision and the paper."""

import pytest
import torch
import torchvision

from course_utils import models
from course_utils.models import BasicBlock, Bottleneck, ResNet, cifar_resnet, count_parameters, plain_net


@pytest.mark.parametrize(
    "name, expected",
    [("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032), ("resnet101", 44_549_160),
     ("resnet152", 60_192_808)],
)
def test_imagenet_parameter_counts_equal_torchvision(name, expected):
    ours = getattr(models, name)(num_classes=1000, stem="imagenet")
    theirs = getattr(torchvision.models, name)()
    assert count_parameters(ours) == expected
    assert count_parameters(theirs) == expected


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet101"])
def test_torchvision_weights_give_the_same_outputs_both_ways(name):
    torch.manual_seed(0)
    ours = getattr(models, name)(num_classes=1000, stem="imagenet").eval()
    theirs = getattr(torchvision.models, name)().eval()
    x = torch.randn(2, 3, 64, 64)

    ours.load_state_dict(theirs.state_dict())  # same key names: no mapping needed
    torch.testing.assert_close(ours(x), theirs(x))

    torch.manual_seed(1)
    ours = getattr(models, name)(num_classes=1000, stem="imagenet").eval()
    theirs.load_state_dict(ours.state_dict())
    torch.testing.assert_close(theirs(x), ours(x))


def test_cifar_resnet20_has_the_papers_parameter_count():
    # The paper's Table 6 says 0.27M for ResNet-20; the exact count with option-A shortcuts:
    assert count_parameters(cifar_resnet(20)) == 269_722
    assert count_parameters(plain_net(20)) == 269_722
    assert count_parameters(cifar_resnet(56)) == count_parameters(plain_net(56)) == 853_018


def test_cifar_family_depths_count_weighted_layers():
    # depth = 6n + 2: n blocks of 2 convs in each of 3 stages, the stem conv and the classifier.
    for depth in (20, 32, 44, 56, 110):
        model = cifar_resnet(depth)
        convs_and_fc = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        assert len(convs_and_fc) == depth


@pytest.mark.parametrize("factory", [lambda: cifar_resnet(20), lambda: plain_net(20),
                                     lambda: models.resnet18(width=8), lambda: models.resnet50(width=8),
                                     lambda: models.resnet18(width=8, stem="imagenet"),
                                     lambda: models.resnet9(width=8)])
@pytest.mark.parametrize("size", [32, 64])
def test_output_shape_is_batch_by_classes(factory, size):
    assert factory()(torch.randn(3, 3, size, size)).shape == (3, 10)


def test_plain_net_has_no_shortcuts_and_resnet_adds_them():
    torch.manual_seed(0)
    resnet = cifar_resnet(20).eval()
    plain = plain_net(20).eval()
    plain.load_state_dict(resnet.state_dict())  # same layers, same names
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(resnet(x), plain(x))
    assert all(not block.residual for block in plain.modules() if isinstance(block, BasicBlock))


@pytest.mark.parametrize("block", [BasicBlock(16, 16), Bottleneck(64, 16)])
def test_block_with_zero_last_bn_is_the_identity_for_nonnegative_input(block):
    last_bn = block.bn3 if isinstance(block, Bottleneck) else block.bn2
    torch.nn.init.zeros_(last_bn.weight)
    torch.nn.init.zeros_(last_bn.bias)
    x = torch.rand(2, 64 if isinstance(block, Bottleneck) else 16, 8, 8)
    torch.testing.assert_close(block.eval()(x), x)
    torch.testing.assert_close(block.train()(x), x)


def test_zero_init_residual_makes_every_block_start_as_identity():
    model = cifar_resnet(20, zero_init_residual=True).eval()
    block = model.layer1[1]
    x = torch.rand(2, 16, 32, 32)
    torch.testing.assert_close(block(x), x)


def test_relu_comes_after_the_addition():
    # A negative branch output must be able to cancel a positive input (ReLU before the add cannot).
    block = BasicBlock(4, 4).eval()
    torch.nn.init.zeros_(block.bn2.weight)
    torch.nn.init.constant_(block.bn2.bias, -2.0)
    x = torch.ones(1, 4, 5, 5)
    torch.testing.assert_close(block(x), torch.zeros_like(x))  # relu(1 + (-2)) = 0


def test_option_a_shortcut_has_no_parameters_and_pads_zeros():
    block_a = BasicBlock(16, 32, stride=2, shortcut="A")
    block_b = BasicBlock(16, 32, stride=2, shortcut="B")
    assert count_parameters(block_b) - count_parameters(block_a) == 16 * 32 + 2 * 32  # 1x1 conv + BN
    x = torch.randn(2, 16, 8, 8)
    skipped = block_a.downsample(x)
    assert skipped.shape == (2, 32, 4, 4)
    torch.testing.assert_close(skipped[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(skipped[:, 16:]) == 0
    assert block_a(x).shape == block_b(x).shape == (2, 32, 4, 4)


def test_identity_blocks_have_no_downsample():
    assert BasicBlock(16, 16).downsample is None
    assert BasicBlock(16, 32, stride=2).downsample is not None


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: cifar_resnet(21), "6n \\+ 2"),
        (lambda: cifar_resnet(2), "6n \\+ 2"),
        (lambda: plain_net(57), "6n \\+ 2"),
        (lambda: models.resnet18(stem="vgg"), "stem must be one of"),
        (lambda: models.resnet18(shortcut="C"), "shortcut must be 'A'"),
        (lambda: cifar_resnet(20, shortcut="b"), "shortcut must be 'A'"),
        (lambda: BasicBlock(16, 32, shortcut="X"), "shortcut must be 'A'"),
        (lambda: models.resnet18(width=0), "width must be a positive int"),
        (lambda: models.resnet18(width=-8), "width must be a positive int"),
        (lambda: models.resnet18(width=2.5), "width must be a positive int"),
        (lambda: models.resnet9(width=0), "width must be a positive int"),
        (lambda: models.build_model("vgg16"), "unknown architecture"),
        (lambda: ResNet(BasicBlock, [], 10), "blocks_per_stage"),
    ],
)
def test_invalid_arguments_raise_value_error_saying_what_is_allowed(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_build_model_rebuilds_from_the_arch_record():
    model = models.resnet18(width=8, stem="cifar")
    rebuilt = models.build_model(**model.arch)
    assert rebuilt.arch == model.arch
    assert count_parameters(rebuilt) == count_parameters(model)


def test_count_macs_matches_the_known_count_of_torchvision_resnet18():
    # 1.814 GMACs for one 224x224 image is the figure torchvision's model card gives (1.81 GFLOPS).
    assert models.count_macs(torchvision.models.resnet18(), image_size=224) == 1_814_073_344
    model = models.cifar_resnet(20)
    model.train()
    assert models.count_macs(model) == 40_551_040
    assert model.training  # counting leaves the mode as it was


def test_resnet9_pools_early_and_keeps_residual_blocks_in_stages_1_and_3():
    model = models.resnet9(width=16)
    # 24.0 M multiply-accumulates per image, as the docstring says: 2/3 of ResNet18 at width 16 (35.0 M).
    assert models.count_macs(model) == 24_036_608
    assert models.count_macs(models.resnet18(width=16)) == 35_046_656
    blocks = [[type(m) for m in stage if isinstance(m, BasicBlock)] for stage in (model.layer1, model.layer2, model.layer3)]
    assert blocks == [[BasicBlock], [], [BasicBlock]]
    assert all(block.downsample is None for block in model.modules() if isinstance(block, BasicBlock))
    x = torch.randn(2, 3, 32, 32)
    sizes = [x.shape[-1]]
    for stage in (model.layer1, model.layer2, model.layer3):
        x = stage(x if len(sizes) > 1 else model.relu(model.bn1(model.conv1(x))))
        sizes.append(x.shape[-1])
    assert sizes == [32, 16, 8, 4]
    rebuilt = models.build_model(**model.arch)
    assert rebuilt.arch == {"name": "resnet9", "num_classes": 10, "width": 16}
    assert count_parameters(rebuilt) == count_parameters(model) == 412_954


def test_resnet9_zero_init_residual_starts_its_blocks_as_the_identity():
    model = models.resnet9(width=8, zero_init_residual=True).eval()
    block = model.layer3[-1]
    x = torch.rand(2, 64, 4, 4)  # non-negative, as after a ReLU
    assert torch.allclose(block(x), x)


def test_named_models():
    assert models.build("plain-56").arch == {"name": "plain_net", "depth": 56, "num_classes": 10}
    assert models.build("resnet-20").arch["name"] == "cifar_resnet"
    assert models.build("resnet34", width=8).arch["width"] == 8
    with pytest.raises(ValueError, match="unknown model name"):
        models.build("vgg-16")


def test_resnet_names_choose_the_shortcut_option():
    option_a, option_b = models.build("resnet-20"), models.build("resnet-20-B")
    assert option_b.arch["shortcut"] == "B" and option_a.arch["shortcut"] == "A"
    assert models.count_parameters(option_b) - models.count_parameters(option_a) == 2_752  # two projections + BN
    with pytest.raises(ValueError, match="resnet-D-B"):
        models.build("plain-20-B")  # a plain network has no shortcut to choose


def test_a_model_built_by_name_carries_the_name_into_its_record_and_its_checkpoint(tmp_path, tiny):
    from course_utils.checkpoint import load_checkpoint, save_checkpoint
    from course_utils.data import TensorLoader
    from course_utils.training import fit

    model = models.build("resnet-20-B")
    assert model.model_name == "resnet-20-B" and model.arch["shortcut"] == "B"
    history = fit(model, TensorLoader(tiny.train_images[:64], tiny.train_labels[:64], batch_size=64), epochs=1,
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.01), progress=False)
    assert history.model_name == "resnet-20-B" and models.family_and_depth(history.model_name) == ("resnet", 20)
    save_checkpoint(tmp_path / "model.pt", model, history=history)
    assert load_checkpoint(tmp_path / "model.pt", models.build("resnet-20-B")).model_name == "resnet-20-B"
    assert models.cifar_resnet(56).model_name == "resnet-56" and models.plain_net(20).model_name == "plain-20"
    assert models.resnet18(width=16).model_name == "resnet18" and models.resnet18(stem="imagenet").model_name is None
    unnamed = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))  # no name to record
    history = fit(unnamed, TensorLoader(tiny.train_images[:64], tiny.train_labels[:64], batch_size=64), epochs=1,
                  optimizer=torch.optim.SGD(unnamed.parameters(), lr=0.01), progress=False)
    assert history.model_name is None and models.family_and_depth(history.model_name) is None


@pytest.mark.parametrize("name, parsed", [
    ("plain-56", ("plain", 56, None)), ("resnet-110", ("resnet", 110, "A")), ("resnet-20-B", ("resnet", 20, "B")),
    ("resnet9", ("resnet9", None, None)), ("resnet50", ("resnet50", None, None)),
    ("article-blocks-3", ("article-blocks", 3, None)), ("paper-blocks-2", ("paper-blocks", 2, None)),
])
def test_every_kind_of_model_name_parses_and_builds(name, parsed):
    assert tuple(models.parse_name(name)) == parsed
    model = models.build(name, width=8)
    assert model.model_name == name and models.count_parameters(model) > 0
    assert models.family_and_depth(name) == (parsed[:2] if parsed[0] in ("plain", "resnet") else None)


@pytest.mark.parametrize("name", ["resnet-21", "plain-20-B", "ResNet-20", "resnet18-B", "vgg-16", "", None, 20])
def test_a_wrong_model_name_is_refused_with_the_valid_names(name):
    with pytest.raises(ValueError, match=r"unknown model name|depth must be 6n \+ 2"):
        models.build(name)
