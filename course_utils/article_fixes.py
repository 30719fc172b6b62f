"""From the article's recipe to the course's, one fix at a time, each trained for the same time.

Notebook 05 asks what the article's own recipe reaches, and what each of its mistakes costs. Each
step of ``FIXES`` keeps the fixes before it and adds one; every step trains for the same number of
seconds on the same machine (the fair comparison for a learner with a fixed amount of time), then
is tested on the same test images. Steps that train the same way share one training run.

| step | network | input pipeline | optimiser | test |
|---|---|---|---|---|
| the article's way | ``article.ArticleResNet18`` | 64x64 crops of a 256 upscale, jitter, batch 8 | SGD lr 0.001, momentum 0.9, no decay, StepLR never stepped | train mode, training transforms |
| + eval() | same run | | | eval mode, centre crop |
| + the paper's blocks | torchvision's ResNet18 layout (``models.resnet18(stem="imagenet")``) | | | |
| + 32x32 inputs | ``models.resnet18()``, CIFAR stem | ``TensorLoader``: pad-4 crop + flip, batch 8 | | |
| + the course's optimiser | | batch 128 | lr 0.1, Nesterov, weight decay 5e-4, label smoothing 0.1, one-cycle over the time | |
| + the laptop network | ``models.resnet9(width=16)`` (the laptop recipe of notebook 08) | | | |

The article's StepLR(step_size=10) would never fire in runs of a few minutes (they end within the
first epochs), so stepping it changes nothing here; the course's schedule fits itself to the time.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from course_utils import article, models
from course_utils.data import Cifar10, TensorLoader
from course_utils.schedules import one_cycle_factor
from course_utils.history import History
from course_utils.training import TimeBudget, evaluate, fit, seed_everything

# The course's optimiser settings: those of notebook 08's laptop recipe as it was when notebook 05's
# comparison was measured over seeds (the recipe now peaks at LR 0.2), without its TTA and layout.
COURSE_OPTIMISER = dict(batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True,
                        label_smoothing=0.1, warmup_fraction=0.2)


@dataclass(frozen=True)
class Fix:
    """One step from the article's recipe towards the course's."""

    label: str
    network: str  # "article", "paper" (torchvision's layout, ImageNet stem), "resnet18" (CIFAR stem), "resnet9"
    pipeline: str  # "article" (its PIL transforms, 64x64) or "tensor" (TensorLoader, 32x32)
    optimiser: str  # "article" or "course"
    test: str  # "as written" (train mode, training transforms) or "eval"

    @property
    def training(self) -> tuple[str, str, str]:
        """What decides the training run: steps that differ only in their test share one."""
        return self.network, self.pipeline, self.optimiser


FIXES: tuple[Fix, ...] = (
    Fix("the article's way", "article", "article", "article", "as written"),
    Fix("+ eval() and a fixed test transform", "article", "article", "article", "eval"),
    Fix("+ the paper's blocks", "paper", "article", "article", "eval"),
    Fix("+ 32x32 inputs, crop and flip", "resnet18", "tensor", "article", "eval"),
    Fix("+ the course's optimiser and schedule", "resnet18", "tensor", "course", "eval"),
    Fix("+ the laptop network (ResNet-9)", "resnet9", "tensor", "course", "eval"),
)


def build_network(fix: Fix) -> nn.Module:
    if fix.network == "article":
        return article.ArticleResNet18()
    if fix.network == "paper":
        return models.resnet18(num_classes=10, stem="imagenet")
    if fix.network == "resnet18":
        return models.resnet18()
    if fix.network == "resnet9":
        return models.resnet9(width=16)
    raise ValueError(f"unknown network {fix.network!r}; use 'article', 'paper', 'resnet18' or 'resnet9'")


def train_fix(fix: Fix, data: Cifar10, seconds: float, *, seed: int = 0, device: torch.device | str = "cpu",
              progress: bool = True, num_workers: int = 2) -> tuple[nn.Module, History]:
    """Train ``fix``'s network its way for ``seconds`` on ``data``'s training images; return the
    model and its History (``config["fix"]``, ``config["seconds"]``)."""
    seed_everything(seed)
    model = build_network(fix)
    course = fix.optimiser == "course"
    batch_size = COURSE_OPTIMISER["batch_size"] if course else 8
    if fix.pipeline == "article":
        loader = article.article_loader(data.train_images, data.train_labels, batch_size=batch_size,
                                        num_workers=num_workers, seed=seed)
    else:
        loader = TensorLoader(data.train_images, data.train_labels, batch_size=batch_size, seed=seed, device=device)
    budget = TimeBudget(seconds)
    if course:
        optimizer = torch.optim.SGD(model.parameters(), lr=COURSE_OPTIMISER["lr"],
                                    momentum=COURSE_OPTIMISER["momentum"], nesterov=COURSE_OPTIMISER["nesterov"],
                                    weight_decay=COURSE_OPTIMISER["weight_decay"])
        # One cycle over the time, not over epochs: the run ends annealed however fast the machine is.
        warmup = COURSE_OPTIMISER["warmup_fraction"]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: one_cycle_factor(budget.fraction, warmup))
        loss_fn = nn.CrossEntropyLoss(label_smoothing=COURSE_OPTIMISER["label_smoothing"])
    else:
        optimizer, scheduler, loss_fn = article.article_optimizer(model), None, None  # its StepLR is never stepped
    # The time ends the run; the epochs are only a bound (at 50,000 images a second, which no CPU or T4 reaches).
    epochs = max(1, math.ceil(seconds * 50_000 / len(data.train_images)))
    history = fit(model, loader, epochs=epochs, optimizer=optimizer, scheduler=scheduler, scheduler_interval="step",
                  device=device, time_limit=budget, loss_fn=loss_fn, progress=progress,
                  config={"fix": fix.label, "seconds": seconds, "seed": seed})
    return model, history


def test_fix(fix: Fix, model: nn.Module, data: Cifar10, *, device: torch.device | str = "cpu",
             num_workers: int = 2) -> float:
    """Test accuracy of a model trained by ``fix`` on ``data``'s test images, the way ``fix`` tests."""
    if fix.test == "as written":  # the article: training transforms, random crops and jitter, train mode
        loader = article.article_loader(data.test_images, data.test_labels, batch_size=8, num_workers=num_workers,
                                        shuffle=False, train=True)
        predictions, labels = article.predict_as_written(model, loader, device)
        return (predictions == labels).float().mean().item()
    if fix.pipeline == "article":  # the same 64x64 scale, centre crop, every image
        loader = article.article_loader(data.test_images, data.test_labels, batch_size=100, num_workers=num_workers,
                                        shuffle=False, train=False)
    else:
        loader = TensorLoader(data.test_images, data.test_labels, batch_size=500, augment=False, shuffle=False,
                              device=device)
    return evaluate(model, loader, device=device).accuracy


def run_fixes(data: Cifar10, seconds: float, *, only: tuple[str, ...] | None = None, seed: int = 0,
              device: torch.device | str = "cpu", progress: bool = True, num_workers: int = 2) -> dict[str, History]:
    """Train and test each step of ``FIXES`` (or the labels in ``only``) for ``seconds`` each; return
    ``{label: History}`` with the test in ``meta["final_test"]`` (``History.test_acc``)."""
    chosen = [fix for fix in FIXES if only is None or fix.label in only]
    unknown = sorted(set(only or ()) - {fix.label for fix in FIXES})
    if unknown:
        raise ValueError(f"unknown step(s) {unknown}; the steps are: {', '.join(fix.label for fix in FIXES)}")
    trained: dict[tuple[str, str, str], tuple[nn.Module, History]] = {}
    runs = {}
    for fix in chosen:
        if fix.training not in trained:
            if progress:
                print(f"--- {fix.label}: {seconds:g} s of training ---")
            trained[fix.training] = train_fix(fix, data, seconds, seed=seed, device=device, progress=progress,
                                              num_workers=num_workers)
        model, history = trained[fix.training]
        record = history if fix.label == history.config["fix"] else copy.deepcopy(history)  # a second test of one run
        record.config["fix"] = fix.label
        record.meta["final_test"] = {"images": len(data.test_labels), "how": fix.test,
                                     "accuracy": test_fix(fix, model, data, device=device, num_workers=num_workers)}
        runs[fix.label] = record
    return runs
