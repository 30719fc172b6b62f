"""The ResNet family, written the way He et al. (2016) draw it.

"Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385).

* ``BasicBlock``   two 3x3 convolutions (Fig. 2 of the paper), used by ResNet18/34 and the CIFAR nets.
* ``Bottleneck``   1x1 -> 3x3 -> 1x1 (Fig. 5, right), used by ResNet-50.
* ``ResNet``       a stem, stages of blocks, global average pooling and a linear classifier.
* factories        ``resnet18/34/50``, ``cifar_resnet(depth)`` (the paper's 6n+2 family, Section 4.2)
                   and ``plain_net(depth)`` (the same layers with the shortcuts removed).
* ``ResNet9``      the DAWNBench layout (Myrtle.ai, 2018): downsampling early, few but wide
                   BasicBlocks; the course's laptop recipe (``resnet9``).
* ``build(name)``  the course's model names ("plain-56", "resnet-20", "resnet18", ...), the one
                   vocabulary of settings, run records, checkpoints and plots (``MODEL_NAMES``).

Attribute names follow torchvision's ``models/resnet.py`` (``conv1``, ``bn1``, ``layer1``...,
``downsample``, ``fc``), so a torchvision state_dict loads into these models unchanged and back.
"""

from __future__ import annotations

import re
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUT_OPTIONS = ("A", "B")
STEMS = ("imagenet", "cifar")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1; no bias because a BatchNorm follows."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution; no bias because a BatchNorm follows."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A of the paper: a shortcut with no parameters for a block that changes shape.

    It keeps every ``stride``-th pixel (halving height and width for stride 2) and appends
    zero-filled channels, so ``x`` can be added to a branch with more channels.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        # F.pad pads the last dimensions first: (width), (height), (channels).
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def make_shortcut(in_channels: int, out_channels: int, stride: int, option: str) -> nn.Module | None:
    """The skip path of a block: ``None`` (identity) when shapes match, else option A or B."""
    _check_shortcut(option)
    if stride == 1 and in_channels == out_channels:
        return None
    if option == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    # Option B: a learned projection, as torchvision does it.
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU (Fig. 2 of the paper).

    Input (N, in_channels, H, W) -> output (N, out_channels, H / stride, W / stride).
    ``residual=False`` gives the plain block: the same layers without the addition.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        shortcut: str = "B",
        residual: bool = True,
    ) -> None:
        super().__init__()
        _check_shortcut(shortcut)
        self.residual = residual
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = make_shortcut(in_channels, out_channels, stride, shortcut) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)

        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out = out + identity
        # ReLU after the addition, so the identity path is not clipped inside the block.
        out = self.relu(out)
        return out


class Bottleneck(nn.Module):
    """conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN, plus the shortcut, then ReLU (Fig. 5, right).

    ``channels`` is the width of the 3x3 convolution; the block outputs ``channels * 4``.
    The stride sits on the 3x3 convolution, as in torchvision ("ResNet v1.5").
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        shortcut: str = "B",
        residual: bool = True,
    ) -> None:
        super().__init__()
        _check_shortcut(shortcut)
        out_channels = channels * self.expansion
        self.residual = residual
        self.conv1 = conv1x1(in_channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(in_channels, out_channels, stride, shortcut) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)

        out = self.conv3(out)
        out = self.bn3(out)

        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out = out + identity
        out = self.relu(out)
        return out


Block = Callable[..., nn.Module]


class ResNet(nn.Module):
    """Stem -> stages of blocks -> global average pool -> linear classifier.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        blocks_per_stage: e.g. ``[2, 2, 2, 2]`` for ResNet18, ``[3, 3, 3]`` for ResNet-20.
        num_classes: size of the output (10 for CIFAR-10).
        stem: ``"imagenet"`` = 7x7 stride-2 conv + 3x3 stride-2 max-pool (a 224x224 image
            becomes 56x56); ``"cifar"`` = one 3x3 stride-1 conv and no pool, which keeps the
            32x32 resolution of CIFAR images.
        width: channels of the first stage; each later stage doubles it (64 -> 64/128/256/512).
        shortcut: ``"B"`` projection (1x1 conv + BN) or ``"A"`` zero-padding where shapes change.
        residual: ``False`` removes every shortcut (the paper's "plain" networks).
        zero_init_residual: start the last BN of each residual branch at zero, so each block
            begins as the identity (Goyal et al. 2017, "Accurate, Large Minibatch SGD").
    """

    def __init__(
        self,
        block: Block,
        blocks_per_stage: Sequence[int],
        num_classes: int = 10,
        stem: str = "imagenet",
        width: int = 64,
        shortcut: str = "B",
        residual: bool = True,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        _check_shortcut(shortcut)
        _check_positive_int("width", width)
        _check_positive_int("num_classes", num_classes)
        if not blocks_per_stage or any(not isinstance(n, int) or n < 1 for n in blocks_per_stage):
            raise ValueError(f"blocks_per_stage must be a list of positive ints, got {blocks_per_stage!r}")

        self.in_channels = width
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = conv3x3(3, width)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)

        # Stages are named layer1, layer2, ... as in torchvision, so state_dict keys match.
        self.num_stages = len(blocks_per_stage)
        for index, num_blocks in enumerate(blocks_per_stage):
            stride = 1 if index == 0 else 2  # every stage after the first halves H and W
            channels = width * 2**index
            stage = self._make_stage(block, channels, num_blocks, stride, shortcut, residual)
            self.add_module(f"layer{index + 1}", stage)

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.in_channels, num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck):
                    nn.init.zeros_(module.bn3.weight)
                elif isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    def _make_stage(
        self, block: Block, channels: int, num_blocks: int, stride: int, shortcut: str, residual: bool
    ) -> nn.Sequential:
        # Only the first block of a stage changes the shape (the "channel-doubling" block).
        layers = [block(self.in_channels, channels, stride, shortcut=shortcut, residual=residual)]
        self.in_channels = channels * block.expansion
        for _ in range(1, num_blocks):
            layers.append(block(self.in_channels, channels, shortcut=shortcut, residual=residual))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)

        for stage in self.stages():
            x = stage(x)

        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x

    def stages(self) -> list[nn.Sequential]:
        """The stages in order: ``[self.layer1, self.layer2, ...]``."""
        return [getattr(self, f"layer{index}") for index in range(1, self.num_stages + 1)]


class ResNet9(nn.Module):
    """The 9-layer residual network of the DAWNBench CIFAR-10 entries (David Page, Myrtle.ai,
    "How to train your ResNet", 2018), built from the course's ``BasicBlock``.

    A 3x3 stem keeps 32x32; then three stages, each one conv3x3-BN-ReLU that doubles the channels
    followed by a 2x2 max-pool that halves the resolution (16, 8, 4 pixels); stages 1 and 3 add one
    ``BasicBlock`` (identity shortcut) at their new size. Global max-pool, a linear classifier.
    ``width`` is the stem's channels (64 in the original, 16 on a laptop: 16/32/64/128).

    Why it trains fast: a ResNet18 spends most of its work on 32x32 and 16x16 maps; this layout
    pools right after each widening, so the wide layers run on small maps. At width 16 it costs
    24.0 M multiply-accumulates per image (ResNet18 at width 16: 35.0 M). Nine weight layers
    (eight convolutions and the classifier) give the name; shortcuts pass around four convolutions.
    """

    def __init__(self, num_classes: int = 10, width: int = 16, zero_init_residual: bool = False) -> None:
        super().__init__()
        _check_positive_int("width", width)
        _check_positive_int("num_classes", num_classes)
        self.conv1 = conv3x3(3, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_stage(width, 2 * width, residual_block=True)
        self.layer2 = self._make_stage(2 * width, 4 * width, residual_block=False)
        self.layer3 = self._make_stage(4 * width, 8 * width, residual_block=True)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(8 * width, num_classes)
        # The max-pooled features of a fresh network are large: unscaled, the first steps' loss was
        # ~10 at lr 0.1. The DAWNBench entry scales the logits by 1/8; so do we.
        self.logit_scale = 0.125
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    @staticmethod
    def _make_stage(in_channels: int, channels: int, residual_block: bool) -> nn.Sequential:
        layers = [conv3x3(in_channels, channels), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                  nn.MaxPool2d(2)]
        if residual_block:
            layers.append(BasicBlock(channels, channels))  # same shape in and out: identity shortcut
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1)) * self.logit_scale


def resnet9(num_classes: int = 10, width: int = 16, **kwargs) -> ResNet9:
    """The DAWNBench ResNet-9 (``ResNet9``) at stem width ``width`` (64 in the original)."""
    return _named("resnet9", ResNet9(num_classes, width, **kwargs), num_classes=num_classes, width=width, **kwargs)


def resnet18(num_classes: int = 10, stem: str = "cifar", width: int = 64, **kwargs) -> ResNet:
    """ResNet18: BasicBlocks [2, 2, 2, 2] (11,689,512 parameters with 1000 classes, ImageNet stem)."""
    return _named("resnet18", ResNet(BasicBlock, [2, 2, 2, 2], num_classes, stem, width, **kwargs),
                  num_classes=num_classes, stem=stem, width=width, **kwargs)


def resnet34(num_classes: int = 10, stem: str = "cifar", width: int = 64, **kwargs) -> ResNet:
    """ResNet34: BasicBlocks [3, 4, 6, 3] (21,797,672 parameters with 1000 classes, ImageNet stem)."""
    return _named("resnet34", ResNet(BasicBlock, [3, 4, 6, 3], num_classes, stem, width, **kwargs),
                  num_classes=num_classes, stem=stem, width=width, **kwargs)


def resnet50(num_classes: int = 10, stem: str = "cifar", width: int = 64, **kwargs) -> ResNet:
    """ResNet-50: Bottlenecks [3, 4, 6, 3] (25,557,032 parameters with 1000 classes, ImageNet stem)."""
    return _named("resnet50", ResNet(Bottleneck, [3, 4, 6, 3], num_classes, stem, width, **kwargs),
                  num_classes=num_classes, stem=stem, width=width, **kwargs)


def resnet101(num_classes: int = 10, stem: str = "cifar", width: int = 64, **kwargs) -> ResNet:
    """ResNet-101: Bottlenecks [3, 4, 23, 3] (44,549,160 parameters with 1000 classes, ImageNet stem)."""
    return _named("resnet101", ResNet(Bottleneck, [3, 4, 23, 3], num_classes, stem, width, **kwargs),
                  num_classes=num_classes, stem=stem, width=width, **kwargs)


def resnet152(num_classes: int = 10, stem: str = "cifar", width: int = 64, **kwargs) -> ResNet:
    """ResNet-152: Bottlenecks [3, 8, 36, 3] (60,192,808 parameters with 1000 classes, ImageNet stem)."""
    return _named("resnet152", ResNet(Bottleneck, [3, 8, 36, 3], num_classes, stem, width, **kwargs),
                  num_classes=num_classes, stem=stem, width=width, **kwargs)


def cifar_resnet(depth: int, num_classes: int = 10, shortcut: str = "A", **kwargs) -> ResNet:
    """The paper's CIFAR-10 ResNets (Section 4.2): depth = 6n + 2 (20, 32, 44, 56, 110).

    A 3x3 stem with 16 channels, three stages of n BasicBlocks with 16/32/64 channels on
    32x32/16x16/8x8 maps, global average pooling, a 10-way linear layer. Option-A shortcuts.
    """
    n = _blocks_per_stage(depth)
    model = ResNet(BasicBlock, [n, n, n], num_classes, stem="cifar", width=16, shortcut=shortcut, **kwargs)
    return _named("cifar_resnet", model, depth=depth, num_classes=num_classes, shortcut=shortcut, **kwargs)


def plain_net(depth: int, num_classes: int = 10, **kwargs) -> ResNet:
    """``cifar_resnet(depth)`` without shortcuts: the paper's plain baseline (same parameter count)."""
    n = _blocks_per_stage(depth)
    model = ResNet(BasicBlock, [n, n, n], num_classes, stem="cifar", width=16, residual=False, **kwargs)
    return _named("plain_net", model, depth=depth, num_classes=num_classes, **kwargs)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "resnet9": resnet9,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "resnet152": resnet152,
    "cifar_resnet": cifar_resnet,
    "plain_net": plain_net,
}


def build_model(name: str, **config) -> nn.Module:
    """Rebuild a model from the ``model.arch`` record a factory leaves (used by checkpoints)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name](**config)


MODEL_NAMES = ("'plain-D' or 'resnet-D' (D = 6n + 2, e.g. 20, 56; 'resnet-D-B' for option-B shortcuts), resnet9, "
               "resnet18 / 34 / 50 / 101 / 152, or article-blocks-N / paper-blocks-N")
_CIFAR_NAME = re.compile(r"(plain|resnet)-(\d+)(-B)?")
_BLOCKS_NAME = re.compile(r"(article|paper)-blocks-(\d+)")
_IMAGENET_LAYOUTS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


class ModelName(NamedTuple):
    """What a course model name says: ``"resnet-20-B"`` is family "resnet", depth 20, shortcut "B"."""

    family: str  # "plain", "resnet" (the paper's CIFAR nets), "resnet9", "resnet18"..., "article-blocks", "paper-blocks"
    depth: int | None = None  # weighted layers of the CIFAR nets; blocks of the block stacks
    shortcut: str | None = None  # "A" or "B" for the residual CIFAR nets


def parse_name(name: str) -> ModelName:
    """``"plain-56"`` -> ``ModelName("plain", 56)``; a ValueError naming the valid names for any other text."""
    match = _CIFAR_NAME.fullmatch(name) if isinstance(name, str) else None
    if match and not (match.group(1) == "plain" and match.group(3)):  # a plain network has no shortcut to choose
        family = match.group(1)
        return ModelName(family, int(match.group(2)), None if family == "plain" else "B" if match.group(3) else "A")
    match = _BLOCKS_NAME.fullmatch(name) if isinstance(name, str) else None
    if match:
        return ModelName(f"{match.group(1)}-blocks", int(match.group(2)))
    if name == "resnet9" or name in _IMAGENET_LAYOUTS:
        return ModelName(name)
    raise ValueError(f"unknown model name {name!r}; use {MODEL_NAMES}")


def family_and_depth(name: str | None) -> tuple[str, int] | None:
    """``("plain", 56)`` or ``("resnet", 20)`` for the paper's CIFAR networks; None for any other
    model name, and for None (a record of a model not built by name)."""
    if name is None:
        return None
    parsed = parse_name(name)
    return (parsed.family, parsed.depth) if parsed.family in ("plain", "resnet") else None


def build(name: str, width: int | None = None, zero_init_residual: bool = False) -> nn.Module:
    """The freshly initialised model called ``name`` (``MODEL_NAMES``), with ``model.model_name = name``
    so that ``training.fit`` and ``checkpoint.save_checkpoint`` record the name it was built by.

    ``"plain-56"`` -> ``plain_net(56)``, ``"resnet-20"`` -> ``cifar_resnet(20)`` (option-A shortcuts;
    ``"resnet-20-B"``: option B, a 1x1 projection and BatchNorm where the shape changes),
    ``"resnet18"`` -> ``resnet18(stem="cifar", width=width or 64)`` (likewise 34 to 152),
    ``"resnet9"`` -> ``resnet9(width=width or 16)`` (the laptop recipe's network),
    ``"article-blocks-3"`` / ``"paper-blocks-3"`` -> a stem, 3 of the article's / the paper's
    residual blocks of ``width`` channels (16 by default), pooling and a classifier (notebook 02).
    ``width`` does not apply to the paper's CIFAR nets (16/32/64 channels by definition).

    ``zero_init_residual`` applies to the residual networks only: a plain block whose last
    BatchNorm scale is zero would output zeros, not its input.
    """
    parsed = parse_name(name)
    if parsed.family == "plain":
        model = plain_net(parsed.depth)
    elif parsed.family == "resnet":
        model = cifar_resnet(parsed.depth, shortcut=parsed.shortcut, zero_init_residual=zero_init_residual)
    elif parsed.family == "resnet9":
        model = resnet9(width=width or 16, zero_init_residual=zero_init_residual)
    elif parsed.family == "article-blocks":
        # Here, not at the top: the article's block lives with the rest of the article's code, which
        # also trains and tests the article's way (and so imports the training loop, above this module).
        from course_utils.article import article_block_stack

        model = article_block_stack(num_blocks=parsed.depth, width=width or 16)
    elif parsed.family == "paper-blocks":
        model = ResNet(BasicBlock, [parsed.depth], stem="cifar", width=width or 16)
    else:
        model = build_model(parsed.family, stem="cifar", width=width or 64, zero_init_residual=zero_init_residual)
    model.model_name = name
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (each shared tensor counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, image_size: int = 32) -> int:
    """Multiply-accumulates of one forward pass of one ``image_size`` x ``image_size`` RGB image.

    Counted by running the model under ``torch.utils.flop_counter.FlopCounterMode`` (which counts
    convolutions and matrix products: 2 FLOPs per multiply-accumulate), not by hand, so the count
    follows the model's code. Training one image costs about 3x this (forward + backward).
    """
    from torch.utils.flop_counter import FlopCounterMode

    parameter = next(model.parameters())
    image = torch.zeros(1, 3, image_size, image_size, device=parameter.device, dtype=parameter.dtype)
    was_training = model.training
    model.eval()  # BatchNorm with a batch of 1 image only works in eval mode
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(image)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def _named(name: str, model: nn.Module, **config) -> nn.Module:
    # A plain dict on the model: checkpoints store it so a file says what it contains. And the
    # course's name of the network, where it has one: models.resnet18() is "resnet18" as much as
    # build("resnet18") is, so every record and checkpoint says the same name for the same network.
    model.arch = {"name": name, **config}
    model.model_name = _course_name(model.arch)
    return model


def _course_name(arch: dict) -> str | None:
    """The name ``build`` knows this architecture by ("resnet-20-B", "plain-56", "resnet18"), or None:
    ``build("resnet18")`` means the CIFAR stem, so an ImageNet-stem ResNet18 has no course name."""
    if arch["name"] == "cifar_resnet":
        return f"resnet-{arch['depth']}" + ("-B" if arch.get("shortcut") == "B" else "")
    if arch["name"] == "plain_net":
        return f"plain-{arch['depth']}"
    if arch["name"] == "resnet9" or (arch["name"] in _IMAGENET_LAYOUTS and arch.get("stem") == "cifar"):
        return arch["name"]
    return None


def _blocks_per_stage(depth: int) -> int:
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
        raise ValueError(
            f"depth must be 6n + 2 for a whole n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {depth!r}"
        )
    return (depth - 2) // 6


def _check_shortcut(option: str) -> None:
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(
            f"shortcut must be 'A' (zero-padding, no parameters) or 'B' (1x1 conv + BN), got {option!r}"
        )


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
