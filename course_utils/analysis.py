"""Looking inside networks: gradients per layer (why plain nets are hard to train)."""

from __future__ import annotations

import torch
from torch import nn


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
