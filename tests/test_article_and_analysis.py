"""course_utils.article (the blog's way, defects included) and course_utils.analysis."""

import copy

import pytest
import torch
import torchvision
from torch import nn

from course_utils import analysis, models
from course_utils.article import (ArticleDoublingBlock, ArticleResidualBlock, ArticleResNet18, article_block_stack,
                                  article_loader, article_optimizer, article_scheduler, train_as_written)
from course_utils.data import EpochLoader, TensorLoader


def test_article_resnet18_has_the_measured_parameter_count_and_15_convs():
    article = ArticleResNet18()
    # Measured on the article's original code (see shared/seed/README.md): 8,009,482 parameters
    # and 15 distinct convolutions, against torchvision's 11,181,642 and 20 with 10 classes.
    assert models.count_parameters(article) == 8_009_482
    assert sum(isinstance(m, nn.Conv2d) for m in article.modules()) == 15
    assert models.count_parameters(article) < models.count_parameters(torchvision.models.resnet18(num_classes=10))
    assert article(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_article_loader_reproduces_the_articles_pipeline(tiny):
    loader = article_loader(tiny.train_images, tiny.train_labels, batch_size=8, num_workers=0)
    images, labels = next(iter(loader))
    assert images.shape == (8, 3, 64, 64) and labels.shape == (8,)
    assert images.min() >= -1 and images.max() <= 1  # Normalize(0.5, 0.5) maps [0, 1] to [-1, 1]
    assert len(loader) == len(tiny.train_images) // 8  # drop_last, as the article


def test_article_loader_repeats_its_order_for_an_epoch_and_changes_it_between_epochs(tiny):
    loader = article_loader(tiny.train_images[:64], tiny.train_labels[:64], batch_size=8, num_workers=0, seed=1)
    assert isinstance(loader, EpochLoader)  # so fit calls set_epoch

    def labels_of_epoch(epoch):
        loader.set_epoch(epoch)
        return torch.cat([labels for _, labels in loader])

    assert torch.equal(labels_of_epoch(0), labels_of_epoch(0))
    assert not torch.equal(labels_of_epoch(0), labels_of_epoch(1))


def test_the_articles_loop_as_written_never_decays_the_learning_rate(tiny, capsys):
    torch.manual_seed(0)
    model = article_block_stack(num_blocks=1, width=8)
    optimizer = article_optimizer(model)
    scheduler = article_scheduler(optimizer, step_size=1)  # created, as in the article, and never stepped
    loader = TensorLoader(tiny.train_images, tiny.train_labels, batch_size=16, seed=0)
    averages = train_as_written(model, loader, optimizer, epochs=2, print_every=4)
    assert len(averages) == 2 * (len(loader) // 4) and all(0 < loss < 10 for loss in averages)
    assert "average loss" in capsys.readouterr().out
    assert optimizer.param_groups[0]["lr"] == 0.001 and scheduler.last_epoch == 0
    scheduler.step()  # what the article forgot: once per epoch
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0001)


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


def test_lesion_study_removes_each_block_once_and_restores_the_model(tiny):
    from course_utils.data import TensorLoader

    loader = TensorLoader(tiny.test_images, tiny.test_labels, batch_size=100, augment=False, shuffle=False)
    model = models.cifar_resnet(8, zero_init_residual=True).eval()  # every block starts as the identity
    untouched = copy.deepcopy(model)
    results = analysis.lesion_study(model, loader)
    assert list(results) == ["none removed", "layer1.0", "layer2.0", "layer3.0"]
    # An identity block with a plain identity skip: removing it changes nothing.
    assert results["layer1.0"] == results["none removed"]
    # Every block is back afterwards: once the blocks are no longer the identity, the model still
    # computes what a copy that never went through the study computes.
    images = next(iter(loader))[0]
    for network in (model, untouched):
        for block in (network.layer1[0], network.layer2[0], network.layer3[0]):
            block.bn2.weight.data.fill_(1.0)
    assert torch.equal(model(images), untouched(images))

    plain = models.plain_net(8)
    assert len(analysis.lesion_study(plain, loader)) == 4  # shape-changing plain blocks get option A


def test_filter_normalized_direction_matches_filter_norms_and_skips_bn():
    model = models.cifar_resnet(8)
    direction = analysis.filter_normalized_direction(model, seed=1)
    weight = model.conv1.weight.detach()
    torch.testing.assert_close(direction["conv1.weight"].flatten(1).norm(dim=1), weight.flatten(1).norm(dim=1))
    assert torch.count_nonzero(direction["bn1.weight"]) == 0


def test_loss_along_direction_is_the_plain_loss_at_zero_and_restores_weights(tiny):
    model = models.cifar_resnet(8).eval()
    images = (tiny.test_images[:20].float() / 255 - 0.5) / 0.25
    labels = tiny.test_labels[:20]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    direction = analysis.filter_normalized_direction(model)
    losses = analysis.loss_along_direction(model, images, labels, direction, torch.tensor([-0.5, 0.0, 0.5]))
    with torch.no_grad():
        expected = nn.functional.cross_entropy(model(images), labels).item()
    assert losses[1] == pytest.approx(expected, rel=1e-5)
    assert losses[0] != losses[1]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_recalibrated_batchnorm_matches_the_statistics_of_the_batches_it_saw(tiny):
    model = models.cifar_resnet(8)
    loader = TensorLoader(tiny.train_images, tiny.train_labels, batch_size=64, augment=False, shuffle=False)
    batches = [images for images, _ in loader][:3]
    model.bn1.running_mean.fill_(5.0)  # stale statistics, as after a short run
    analysis.recalibrate_batchnorm(model, loader, batches=3)
    assert not model.training and model.bn1.momentum == 0.1  # momentum restored
    # The cumulative average of 3 equal-sized batches' means is the mean over all 192 images.
    torch.testing.assert_close(model.bn1.running_mean,
                               model.conv1(torch.cat(batches)).detach().mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert int(model.bn1.num_batches_tracked) == 3


def test_architecture_table_counts_the_layers_the_names_promise():
    rows = analysis.architecture_table(("resnet18", "resnet50", "resnet152"), image_size=32, batch_size=1)
    assert [row["layers"] for row in rows] == [18, 50, 152]
    assert [row["block"] for row in rows] == ["BasicBlock", "Bottleneck", "Bottleneck"]
    assert rows[2]["blocks_per_stage"] == [3, 8, 36, 3] and rows[2]["parameters"] == 60_192_808
    assert rows[0]["macs"] < rows[1]["macs"] < rows[2]["macs"]
