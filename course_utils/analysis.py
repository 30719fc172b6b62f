"""Looking inside networks, and comparing architectures.

* ``gradient_norms``               the loss gradient per layer (why deep plain nets are hard to train).
* ``layer_table``                  each layer's output shape and parameters for one input.
* ``lesion_study``                 test accuracy with one block removed at a time (Veit et al. 2016).
* ``filter_normalized_direction``, ``loss_along_direction``  a 1-D slice of the loss surface (Li et al. 2018).
* ``recalibrate_batchnorm``        re-estimate BatchNorm statistics after a short run.
* ``architecture_table``           blocks, layers, parameters, MACs and speed of ResNet18-152.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from course_utils import models
from course_utils.models import BasicBlock, Bottleneck, ZeroPadShortcut
from course_utils.training import evaluate


def gradient_norms(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """L2 norm of the loss gradient for each convolution's weights, ordered from input to output.

    One forward and backward pass of cross-entropy on ``(images, labels)`` in train mode (as
    during training). Large differences between the first and last layers mean that one
    learning rate cannot suit them all: the signature of a network that is hard to optimise.
    """
    model.train()
    model.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    norms = {name: module.weight.grad.norm().item()
             for name, module in model.named_modules() if isinstance(module, nn.Conv2d)}
    model.zero_grad(set_to_none=True)
    return norms


def layer_table(model: nn.Module, x: torch.Tensor, depth: int = 1) -> list[tuple[str, str, tuple, int]]:
    """Run ``x`` through ``model`` and list ``(name, layer type, output shape, parameters)`` for
    each submodule ``depth`` levels down (1 = the model's direct children), in call order.

    Prints the table too. A layer that is defined but never called (the article's max-pool) does
    not appear, and a layer called twice appears twice.
    """
    rows = []

    def record(name):
        def hook(module, inputs, output):
            rows.append((name, type(module).__name__, tuple(output.shape),
                         sum(p.numel() for p in module.parameters())))
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in model.named_modules()
               if name and name.count(".") == depth - 1]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()

    print(f"{'layer':<16}{'type':<18}{'output shape':<22}{'parameters':>12}")
    print(f"{'input':<16}{'':<18}{str(tuple(x.shape)):<22}{'':>12}")
    for name, kind, shape, parameters in rows:
        print(f"{name:<16}{kind:<18}{str(shape):<22}{parameters:>12,}")
    return rows


def lesion_study(model: nn.Module, loader, device: torch.device | str | None = None) -> dict[str, float]:
    """Test accuracy with one block at a time removed (Veit et al. 2016, "Residual Networks Behave
    Like Ensembles of Relatively Shallow Networks").

    Removing a block keeps only its skip path: ``relu(shortcut(x))``, that is the input itself
    where shapes match, or the parameter-free option-A shortcut (subsample + zero channels) where
    they change. A residual block's output already contains that path; a plain block has none,
    so for it this is the closest thing to "nothing". Returns ``{block name: accuracy}`` (0-1),
    blocks in order from input to output, plus ``"none removed"`` first.
    """
    def skip_path(block):
        shortcut = block.downsample
        if shortcut is None and (block.conv1.stride != (1, 1) or block.conv1.in_channels != block.bn2.num_features):
            # A plain block that changes shape: use the parameter-free option-A shortcut.
            shortcut = ZeroPadShortcut(block.conv1.in_channels, block.bn2.num_features, block.conv1.stride[0])
        return lambda module, inputs, output: torch.relu(inputs[0] if shortcut is None else shortcut(inputs[0]))

    results = {"none removed": evaluate(model, loader, device=device).accuracy}
    for name, block in model.named_modules():
        if isinstance(block, (BasicBlock, Bottleneck)):
            handle = block.register_forward_hook(skip_path(block))  # a hook's return value replaces the output
            try:
                results[name] = evaluate(model, loader, device=device).accuracy
            finally:
                handle.remove()
    return results


def filter_normalized_direction(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random direction in weight space, scaled filter by filter to the weights' own size (Li et
    al. 2018, "Visualizing the Loss Landscape of Neural Nets"), so that nets of different scales
    can be compared. Convolution and linear weights only; BatchNorm parameters and biases get 0."""
    generator = torch.Generator().manual_seed(seed)
    direction = {}
    for name, parameter in model.named_parameters():
        if parameter.dim() <= 1:
            direction[name] = torch.zeros_like(parameter)
            continue
        random = torch.randn(parameter.shape, generator=generator).to(parameter.device)
        # One "filter" = one output channel (dim 0): give it the norm of the matching weights.
        weight_norms = parameter.detach().flatten(1).norm(dim=1)
        random_norms = random.flatten(1).norm(dim=1)
        scale = (weight_norms / (random_norms + 1e-10)).view(-1, *[1] * (parameter.dim() - 1))
        direction[name] = random * scale
    return direction


def loss_along_direction(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                         direction: dict[str, torch.Tensor], steps: torch.Tensor) -> list[float]:
    """Cross-entropy on ``(images, labels)`` with the weights moved to ``w + step * direction``, for
    each step (e.g. ``torch.linspace(-1, 1, 21)``). Eval mode (BatchNorm's running statistics), no
    gradients; the model's weights are restored afterwards."""
    original = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    was_training = model.training
    model.eval()
    losses = []
    try:
        with torch.no_grad():
            for step in steps.tolist():
                for name, parameter in model.named_parameters():
                    parameter.copy_(original[name] + step * direction[name])
                losses.append(nn.functional.cross_entropy(model(images), labels).item())
    finally:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                parameter.copy_(original[name])
        model.train(was_training)
    return losses


def recalibrate_batchnorm(model: nn.Module, loader, batches: int = 10,
                          device: torch.device | str | None = None) -> nn.Module:
    """Re-estimate every BatchNorm's running mean and variance on ``batches`` batches of ``loader``.

    In eval mode BatchNorm normalises with running averages collected during training (momentum
    0.1: mostly the last few dozen batches). After a short run those averages still trail weights
    that moved fast, so the network in eval mode can compute something quite different from what
    it learned in train mode (test losses far above ln 10 = 2.303, chance). Recomputing them as a
    plain average over a few batches, with the weights fixed, fixes that without training.
    Returns the model, in eval mode.
    """
    norms = [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # None = cumulative average over the batches seen
    model.train()
    try:
        with torch.no_grad():
            for index, (images, _) in enumerate(loader):
                if index == batches:
                    break
                model(images.to(device) if device is not None else images)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
    return model.eval()


def architecture_table(names: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"), *,
                       image_size: int = 224, batch_size: int = 4,
                       device: torch.device | str = "cpu") -> list[dict]:
    """One row per ImageNet-layout ResNet (1000 classes, torchvision's stem and parameter counts):
    its block, blocks per stage, weight layers, parameters, forward multiply-accumulates of one
    ``image_size`` image (counted by ``models.count_macs``), and the measured seconds of one
    forward pass of a batch of ``batch_size`` images on ``device`` (the fastest of three, after one
    untimed pass).

    Weight layers are what the names count: the stem convolution, the convolutions of every block
    (2 in a BasicBlock, 3 in a Bottleneck) and the classifier; shortcut projections are not counted.
    """
    rows = []
    device = torch.device(device)
    images = torch.rand(batch_size, 3, image_size, image_size, device=device)  # speed does not depend on content
    for name in names:
        model = models.build_model(name, num_classes=1000, stem="imagenet").to(device).eval()
        layers = sum(1 for module_name, module in model.named_modules()
                     if isinstance(module, (nn.Conv2d, nn.Linear)) and "downsample" not in module_name)
        with torch.inference_mode():
            model(images)  # untimed: first-call set-up
            times = []
            for _ in range(3):  # the fastest of three: other work on the machine only ever adds time
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                model(images)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - start)
            seconds = min(times)
        rows.append({"name": name, "block": type(model.layer1[0]).__name__,
                     "blocks_per_stage": [len(stage) for stage in model.stages()], "layers": layers,
                     "parameters": models.count_parameters(model), "macs": models.count_macs(model, image_size),
                     "forward_seconds": seconds, "batch_size": batch_size})
    return rows
