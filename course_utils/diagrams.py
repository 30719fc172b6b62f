"""Diagrams of the architecture, drawn from the models themselves so they cannot drift from the code.

* ``draw_block(block)``    one block as its forward() computes it: the layers of the main path, the
  shortcut beside them and the addition (traced with ``torch.fx``, not drawn by hand).
* ``draw_resnet(model)``   a whole network: stem, stages, pooling and classifier, with the shape of
  the feature maps after each part for one input image.

Both return a matplotlib ``Figure``.
"""

from __future__ import annotations

import operator

import matplotlib.pyplot as plt
import torch
import torch.fx
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch
from torch import nn

COLOURS = {"conv": "#cfe2f3", "norm": "#fff2cc", "relu": "#d9ead3", "add": "white", "other": "#eeeeee"}


# What a block calls its shortcut module: torchvision's name, and the article's (``tiao2``).
SHORTCUT_NAMES = ("downsample", "projection")


def _is_shortcut(qualified_name: str) -> bool:
    return qualified_name.split(".")[0] in SHORTCUT_NAMES


class _ShortcutAsOneStep(torch.fx.Tracer):
    """Trace a block, keeping its shortcut (``downsample``) as one step of the graph."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return _is_shortcut(qualified_name) or super().is_leaf_module(module, qualified_name)


def describe_layer(module: nn.Module) -> tuple[str, str]:
    """(text, kind) for one layer of a block's main path, e.g. ('3x3 conv, 64 → 128, stride 2', 'conv')."""
    if isinstance(module, nn.Conv2d):
        size = "x".join(str(k) for k in module.kernel_size)
        stride = f", stride {module.stride[0]}" if module.stride[0] > 1 else ""
        return f"{size} conv, {module.in_channels} → {module.out_channels}{stride}", "conv"
    if isinstance(module, nn.BatchNorm2d):
        return "BatchNorm", "norm"
    if isinstance(module, nn.ReLU):
        return "ReLU", "relu"
    return type(module).__name__, "other"


def describe_shortcut(module: nn.Module | None) -> str:
    """What a block's skip path computes, in words."""
    if module is None:
        return "identity: x itself"
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if convs:  # option B: a learned projection (the article's has no BatchNorm after it)
        conv = convs[0]
        text = f"1x1 conv {conv.in_channels} → {conv.out_channels}, stride {conv.stride[0]}"
        if any(isinstance(m, nn.BatchNorm2d) for m in module.modules()):
            return f"option B: {text}, BatchNorm"
        return f"projection: {text}, no BatchNorm"
    stride = getattr(module, "stride", "?")
    extra = getattr(module, "extra_channels", "?")
    return f"option A: every {stride}nd pixel of x, plus {extra} zero channels"


def block_steps(block: nn.Module) -> tuple[list[tuple[str, str]], str | None]:
    """The main path of ``block`` in the order its forward() runs it, as (text, kind) pairs with
    ("+", "add") where the shortcut joins, and the shortcut's description (None if it has none)."""
    graph = _ShortcutAsOneStep().trace(block)
    modules = dict(block.named_modules())
    steps, shortcut, adds, called = [], None, 0, set()
    for node in graph.nodes:
        if node.op == "call_module" and _is_shortcut(node.target):
            shortcut = describe_shortcut(modules[node.target])
        elif node.op == "call_module":
            text, kind = describe_layer(modules[node.target])
            if node.target in called and kind in ("conv", "norm"):  # a layer with weights, called again
                text += " (same weights again)"
            called.add(node.target)
            steps.append((text, kind))
        elif node.op == "call_function" and node.target in (operator.add, operator.iadd, torch.add):
            steps.append(("+", "add"))
            adds += 1
    if adds and shortcut is None:
        shortcut = describe_shortcut(None)
    return steps, shortcut


def draw_block(block: nn.Module, title: str | None = None, ax=None) -> Figure:
    """One block, top to bottom: input, the layers of its main path, the addition and the final
    ReLU, with the shortcut drawn beside the main path from the input to the addition."""
    steps, shortcut = block_steps(block)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 0.55 * (len(steps) + 2) + 0.4), layout="constrained")
    boxes = [("x (the block's input)", "other"), *steps, ("output", "other")]
    ys = [-i for i in range(len(boxes))]
    for (text, kind), y in zip(boxes, ys):
        shape = "circle,pad=0.25" if kind == "add" else "round,pad=0.35"
        ax.text(0, y, text, ha="center", va="center", fontsize=10,
                bbox=dict(boxstyle=shape, facecolor=COLOURS[kind], edgecolor="0.3"))
    for y in ys[:-1]:
        ax.add_patch(FancyArrowPatch((0, y - 0.25), (0, y - 0.75), arrowstyle="-|>", mutation_scale=12, color="0.3"))
    if shortcut is not None:
        add_y = ys[[kind for _, kind in boxes].index("add")]
        route = 1.35  # right of the widest box: out of the input, down, into the addition
        ax.plot([0.9, route, route], [ys[0], ys[0], add_y], color="#cc4125", linewidth=1.5)
        ax.add_patch(FancyArrowPatch((route, add_y), (0.14, add_y), arrowstyle="-|>", mutation_scale=12,
                                     color="#cc4125", linewidth=1.5))
        ax.text(route + 0.1, (ys[0] + add_y) / 2, "shortcut:\n" + shortcut.replace(": ", ":\n", 1),
                color="#cc4125", va="center", fontsize=9)
    ax.set_xlim(-1.6, 3.9)
    ax.set_ylim(ys[-1] - 0.6, 0.6)
    ax.axis("off")
    ax.set_title(title or type(block).__name__)
    return ax.figure


def draw_resnet(model: nn.Module, image_size: int = 32, title: str | None = None, ax=None) -> Figure:
    """A whole ResNet (``course_utils.models.ResNet``) top to bottom: stem, each stage with its
    blocks, pooling and classifier, and the shape after each for one ``image_size`` image."""
    parts = [("stem", nn.Sequential(*[m for m in (model.conv1, model.bn1, model.relu, model.maxpool)
                                      if not isinstance(m, nn.Identity)]))]
    parts += [(f"layer{i}", stage) for i, stage in enumerate(model.stages(), start=1)]
    parts += [("avgpool", model.avgpool), ("fc", model.fc)]
    shapes = {}
    hooks = [module.register_forward_hook(lambda m, i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
             for name, module in parts if name != "stem"]
    was_training = model.training
    with torch.no_grad():
        model.eval()
        stem_out = model.maxpool(model.relu(model.bn1(model.conv1(torch.zeros(1, 3, image_size, image_size)))))
        model(torch.zeros(1, 3, image_size, image_size))
    model.train(was_training)
    for hook in hooks:
        hook.remove()
    shapes["stem"] = tuple(stem_out.shape[1:])

    texts = [(f"input image: 3 x {image_size} x {image_size}", "other")]
    for name, module in parts:
        shape = " x ".join(str(s) for s in shapes[name])
        if name == "stem":
            layers = ", ".join(describe_layer(m)[0] for m in module if not isinstance(m, nn.MaxPool2d))
            pool = " + 3x3 max-pool /2" if any(isinstance(m, nn.MaxPool2d) for m in module) else ""
            texts.append((f"stem: {layers}{pool}\n→ {shape}", "conv"))
        elif name.startswith("layer"):
            first = module[0]
            conv = first.conv1 if not hasattr(first, "conv3") else first.conv2
            halves = " (first block halves the size: stride 2)" if conv.stride[0] > 1 else ""
            texts.append((f"{name}: {len(module)} x {type(first).__name__}{halves}\n→ {shape}", "relu"))
        elif name == "avgpool":
            texts.append((f"global average pooling → {shape}", "norm"))
        else:
            texts.append((f"linear classifier {module.in_features} → {module.out_features} scores", "other"))
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 0.75 * len(texts) + 0.4), layout="constrained")
    for i, (text, kind) in enumerate(texts):
        ax.text(0, -i, text, ha="center", va="center", fontsize=10,
                bbox=dict(boxstyle="round,pad=0.4", facecolor=COLOURS[kind], edgecolor="0.3"))
        if i:
            ax.add_patch(FancyArrowPatch((0, -i + 0.72), (0, -i + 0.32), arrowstyle="-|>", mutation_scale=12,
                                         color="0.3"))
    ax.set_xlim(-1, 1)
    ax.set_ylim(-len(texts) + 0.4, 0.6)
    ax.axis("off")
    ax.set_title(title or f"{type(model).__name__} for a {image_size}x{image_size} image")
    return ax.figure
