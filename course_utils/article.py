"""The blog article's network, rebuilt faithfully, defects included, so the notebooks can measure them.

The article ("经典卷积神经网络——resnet") names its blocks in pinyin: ``tiao`` (跳, "skip") is the
residual block, ``tiao2`` the channel-doubling block. Its defects, each shown in a notebook:

* ``ArticleResidualBlock`` (``tiao``) applies the *same* conv and the *same* BatchNorm twice, so
  its two "layers" share weights; and it applies ReLU *before* adding the input.
* ``ArticleDoublingBlock`` (``tiao2``) shares one BatchNorm between its two convolutions and has no
  BatchNorm on its 1x1 projection shortcut.
* ``ArticleResNet18`` defines a max-pool that ``forward`` never uses.

Use ``course_utils.models`` for real work: these classes exist to be compared against.
"""

from __future__ import annotations

import torch
from torch import nn


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
