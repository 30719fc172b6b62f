"""The blog article's way, rebuilt faithfully, defects included, so the notebooks can measure them:
its network, its input pipeline, its optimiser and schedule, and its training loop as written.

The article ("经典卷积神经网络——resnet") names its blocks in pinyin: ``tiao`` (跳, "skip") is the
residual block, ``tiao2`` the channel-doubling block. Its defects, each shown in a notebook:

* ``ArticleResidualBlock`` (``tiao``) applies the *same* conv and the *same* BatchNorm twice, so
  its two "layers" share weights; and it applies ReLU *before* adding the input.
* ``ArticleDoublingBlock`` (``tiao2``) shares one BatchNorm between its two convolutions and has no
  BatchNorm on its 1x1 projection shortcut.
* ``ArticleResNet18`` defines a max-pool that ``forward`` never uses.
* ``article_transform`` upscales 32x32 images to 256 and crops 64x64 (a quarter of the image);
  ``article_loader`` feeds them one PIL image at a time in batches of 8.
* ``article_optimizer`` and ``article_scheduler``: SGD lr 0.001 with momentum 0.9, StepLR(10, 0.1);
  the article creates the StepLR but its loop never calls ``scheduler.step()`` (``train_as_written``
  keeps that: no scheduler is stepped), so the learning rate never changes.
* ``predict_as_written`` tests without ``model.eval()``: BatchNorm normalises each test batch with its own
  statistics (so an image's class depends on its neighbours in the batch) and overwrites the
  running statistics it learned.

Use ``course_utils.models``, ``data.TensorLoader`` and ``training.fit`` for real work: what is here
exists to be compared against.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from course_utils.data import TensorLoader
from course_utils.distributed import is_distributed
from course_utils.training import evaluate


class ArticleResidualBlock(nn.Module):
    """The article's ``tiao(shuru, shuchu)``: one conv and one BN, each used twice."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn(self.conv(x)))
        out = self.relu(self.bn(self.conv(out)))  # the same conv and BN again: shared weights
        return out + x  # ReLU came before the addition, so the branch can only add, never subtract


class ArticleDoublingBlock(nn.Module):
    """The article's ``tiao2(shuru)``: halves H and W, doubles channels; one BN for both convs."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        out_channels = 2 * in_channels
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.projection = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=2)  # no BN after it
        self.bn = nn.BatchNorm2d(out_channels)  # shared by conv1 and conv2
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn(self.conv1(x)))
        out = self.relu(self.bn(self.conv2(out)))
        return out + self.projection(x)


class ArticleResNet18(nn.Module):
    """The article's ``resnet18``: a 7x7 stride-2 stem, 8 blocks, average pool, 10-way linear layer."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.bn = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(2, 2)  # defined, as in the article, but never called in forward
        self.blocks = nn.Sequential(
            ArticleResidualBlock(64, 64),
            ArticleResidualBlock(64, 64),
            ArticleDoublingBlock(64),
            ArticleResidualBlock(128, 128),
            ArticleDoublingBlock(128),
            ArticleResidualBlock(256, 256),
            ArticleDoublingBlock(256),
            ArticleResidualBlock(512, 512),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.conv1(x)))
        x = self.blocks(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def article_block_stack(num_blocks: int = 3, width: int = 16, num_classes: int = 10) -> nn.Sequential:
    """A small CIFAR network made of the article's residual blocks, to train against
    ``ResNet(BasicBlock, [num_blocks], stem="cifar", width=width)``: same stem, depth and head."""
    return nn.Sequential(
        nn.Conv2d(3, width, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        *[ArticleResidualBlock(width, width) for _ in range(num_blocks)],
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, num_classes),
    )


def article_transform():
    """The blog article's training transforms, unchanged (for comparison; not the course's default).

    Resize 32 -> 256, random flip, random 64x64 crop (a quarter of the upscaled image, so most
    of the object can be cut away), strong colour jitter, normalise to [-1, 1].
    """
    from torchvision import transforms  # here, not at the top: importing torchvision takes 1.5 s

    return transforms.Compose([
        transforms.Resize(256),
        transforms.RandomHorizontalFlip(),
        transforms.RandomCrop(64),
        transforms.ColorJitter(brightness=0.5, contrast=0.5, hue=0.3),
        transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])


def article_test_transform():
    """``article_transform`` without its randomness: the same scale (Resize 256, a 64x64 window,
    here the centre one) and normalisation, no flip or jitter. The article itself tested with
    its random training transforms; this is the fair way to test a model trained like that."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(64),
        transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])


class TransformedImages(Dataset):
    """uint8 image tensors seen through a torchvision transform, one PIL image at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from torchvision.transforms.functional import to_pil_image

        return self.transform(to_pil_image(self.images[index])), int(self.labels[index])


class ArticleLoader(DataLoader):
    """A ``DataLoader`` whose order follows the epoch (``set_epoch``, called by ``fit``): the
    shuffling generator is re-seeded from the seed and the epoch, or, under ``torchrun``, the
    ``DistributedSampler`` is told the epoch. The per-image random transforms run in worker
    processes whose generators are not re-seeded, so only the order is repeatable."""

    def __init__(self, *args, seed: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seed = seed

    def set_epoch(self, epoch: int) -> None:
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)
        elif self.generator is not None:
            self.generator.manual_seed(self.seed * 1_000_003 + epoch)


def article_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int = 8, num_workers: int = 2,
                   shuffle: bool = True, seed: int = 0, train: bool = True) -> ArticleLoader:
    """The article's input pipeline: ``article_transform()`` per image, in a ``DataLoader``.

    Batches are (batch, 3, 64, 64) floats in [-1, 1]. Incomplete last batches are dropped, as
    in the article. Under ``torchrun`` a ``DistributedSampler`` gives each process its part.
    ``train=False``: ``article_test_transform()`` instead, every image kept (for testing).
    """
    dataset = TransformedImages(images, labels, article_transform() if train else article_test_transform())
    sampler = None
    if is_distributed():  # each process loads its own part of every epoch
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=train)
    return ArticleLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=train,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
        seed=seed,
    )


def article_optimizer(model: nn.Module) -> torch.optim.SGD:
    """The article's optimiser: SGD with learning rate 0.001 and momentum 0.9, no weight decay."""
    return torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)


def article_scheduler(optimizer: torch.optim.Optimizer, step_size: int = 10) -> torch.optim.lr_scheduler.StepLR:
    """The article's schedule: the learning rate divided by 10 every ``step_size`` epochs (10 in the
    article). It only works if ``scheduler.step()`` is called once per epoch, which the article's
    loop never does (``train_as_written`` takes no scheduler, as that loop steps none)."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=0.1)


def train_as_written(model: nn.Module, loader, optimizer: torch.optim.Optimizer, *, epochs: int = 3,
                     device: torch.device | str = "cpu", print_every: int = 100) -> list[float]:
    """The article's training loop, as it is written: ``epochs`` passes over ``loader`` (3 in the
    article), each step zero_grad, forward, cross-entropy, backward, step, and the mean loss of
    every ``print_every`` steps printed and returned. As in the article, the model is never put
    back in train mode, nothing is validated, and no scheduler is stepped: the StepLR it creates
    never changes the learning rate. ``training.fit`` is the corrected loop."""
    loss_fn = nn.CrossEntropyLoss()
    model.to(device)
    averages, running = [], 0.0
    for _epoch in range(epochs):
        for index, (images, labels) in enumerate(loader):
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            running += loss.item()
            if index % print_every == print_every - 1:
                averages.append(running / print_every)
                running = 0.0
                print("average loss", averages[-1])
    return averages


def predict_as_written(model: nn.Module, loader, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The article's test loop: the classes ``model`` predicts for ``loader``'s batches, in the
    loader's order, and the true labels, both on the CPU. The model is left in training mode (the
    article never calls ``model.eval()``), so every BatchNorm normalises each batch with that batch's
    own mean and variance, and an image's class depends on the other images of its batch. Runs on a
    copy: the article's loop also overwrites the running statistics, and ``model`` keeps its own."""
    as_written = copy.deepcopy(model).to(device).train()
    predictions, truth = [], []
    with torch.no_grad():
        for images, labels in loader:
            predictions.append(as_written(images.to(device)).argmax(dim=1).cpu())
            truth.append(labels.cpu())
    return torch.cat(predictions), torch.cat(truth)


def compare_test_modes(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       batch_sizes: tuple[int, ...] = (1, 16, 256), *, seed: int = 0,
                       device: torch.device | str = "cpu") -> list[dict]:
    """Test accuracy in eval mode (``training.evaluate``) against the article's train-mode test, for
    each batch size, and the share of images whose train-mode prediction changes when the same
    images are put into batches in another (``seed``-shuffled) order. One row per batch size:
    ``batch_size``, ``eval_accuracy``, ``train_mode_accuracy``, ``changed_by_order`` (fractions)."""
    everything = torch.arange(len(images))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    rows = []
    for batch_size in batch_sizes:
        as_given, _ = predict_as_written(model, _batches(images, labels, everything, batch_size, device), device)
        reordered = torch.empty_like(as_given)
        reordered[order], _ = predict_as_written(model, _batches(images, labels, order, batch_size, device), device)
        evaluation = evaluate(model, _batches(images, labels, everything, batch_size, device), device=device)
        rows.append({"batch_size": batch_size, "eval_accuracy": evaluation.accuracy,
                     "train_mode_accuracy": (as_given == labels).float().mean().item(),
                     "changed_by_order": (as_given != reordered).float().mean().item()})
    return rows


def _batches(images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, batch_size: int, device) -> TensorLoader:
    """``images[index]`` in that order, normalised, in batches of ``batch_size``, for testing."""
    return TensorLoader(images[index], labels[index], batch_size=batch_size, augment=False, shuffle=False, device=device)
