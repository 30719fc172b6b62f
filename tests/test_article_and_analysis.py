"""course_utils.article (the blog's network, defects included) and course_utils.analysis."""

import torch
import torchvision
from torch import nn

from course_utils import analysis, models
from course_utils.article import ArticleDoublingBlock, ArticleResidualBlock, ArticleResNet18, article_block_stack


def test_article_resnet18_has_the_measured_parameter_count_and_15_convs():
    article = ArticleResNet18()
    # Measured on the article's original code (see shared/seed/README.md): 8,009,482 parameters
    # and 15 distinct convolutions, against torchvision's 11,181,642 and 20 with 10 classes.
    assert models.count_parameters(article) == 8_009_482
    assert sum(isinstance(m, nn.Conv2d) for m in article.modules()) == 15
    assert models.count_parameters(torchvision.models.resnet18(num_classes=10)) == 11_181_642
    assert article(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_article_blocks_share_their_layers():
    block = ArticleResidualBlock(8, 8)
    calls = []
    block.conv.register_forward_hook(lambda *args: calls.append(1))
    x = torch.relu(torch.randn(2, 8, 6, 6))
    out = block(x)
    assert len(calls) == 2 and int(block.bn.num_batches_tracked) == 2
    assert (out - x).min() >= 0  # ReLU before the addition: the block can only add

    doubling = ArticleDoublingBlock(8)
    assert doubling(x).shape == (2, 16, 3, 3)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in doubling.modules()) == 1


def test_article_block_stack_matches_the_paper_stack_in_shape():
    article = article_block_stack(num_blocks=3, width=16)
    paper = models.ResNet(models.BasicBlock, [3], stem="cifar", width=16)
    x = torch.randn(2, 3, 32, 32)
    assert article(x).shape == paper(x).shape == (2, 10)


def test_gradient_norms_cover_every_conv_in_order(tiny):
    model = models.plain_net(20)
    images = (tiny.train_images[:16].float() / 255 - 0.5) / 0.25
    norms = analysis.gradient_norms(model, images, tiny.train_labels[:16])
    assert len(norms) == 19  # 19 convolutions + 1 linear layer = 20 weighted layers
    assert list(norms)[0] == "conv1" and list(norms)[-1] == "layer3.2.conv2"
    assert all(value > 0 for value in norms.values())
    assert all(p.grad is None for p in model.parameters())  # gradients cleared afterwards


def test_layer_table_lists_called_layers_with_shapes(capsys):
    rows = analysis.layer_table(ArticleResNet18(), torch.randn(1, 3, 64, 64))
    names = [row[0] for row in rows]
    assert "maxpool" not in names  # defined but never called
    assert rows[0] == ("conv1", "Conv2d", (1, 64, 32, 32), 9_472)
    assert rows[-1][2] == (1, 10)
    assert "output shape" in capsys.readouterr().out
