"""course_utils.diagrams: the pictures follow the models' code."""

import matplotlib.pyplot as plt
import pytest

from course_utils import diagrams, models


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def texts(figure):
    return [text.get_text() for text in figure.axes[0].texts]


def test_a_basic_block_is_traced_in_the_order_its_forward_runs():
    steps, shortcut = diagrams.block_steps(models.BasicBlock(16, 16))
    assert [text for text, _ in steps] == ["3x3 conv, 16 → 16", "BatchNorm", "ReLU", "3x3 conv, 16 → 16",
                                           "BatchNorm", "+", "ReLU"]
    assert shortcut == "identity: x itself"


def test_doubling_and_bottleneck_blocks_show_their_shortcut_and_stride():
    steps, shortcut = diagrams.block_steps(models.BasicBlock(16, 32, stride=2, shortcut="A"))
    assert steps[0][0] == "3x3 conv, 16 → 32, stride 2" and shortcut.startswith("option A")
    steps, shortcut = diagrams.block_steps(models.resnet50().layer2[0])
    assert [text for text, kind in steps if kind == "conv"] == ["1x1 conv, 256 → 128", "3x3 conv, 128 → 128, stride 2",
                                                                "1x1 conv, 128 → 512"]
    assert shortcut == "option B: 1x1 conv 256 → 512, stride 2, BatchNorm"


def test_a_plain_block_has_no_shortcut_and_no_addition():
    steps, shortcut = diagrams.block_steps(models.plain_net(20).layer1[0])
    assert shortcut is None and ("+", "add") not in steps
    assert "shortcut" not in " ".join(texts(diagrams.draw_block(models.plain_net(20).layer1[0])))


def test_the_resnet_picture_gives_each_stage_and_its_output_shape():
    drawn = texts(diagrams.draw_resnet(models.resnet18(), image_size=32))
    assert drawn[0] == "input image: 3 x 32 x 32"
    assert "layer2: 2 x BasicBlock (first block halves the size: stride 2)\n→ 128 x 16 x 16" in drawn
    assert drawn[-1] == "linear classifier 512 → 10 scores"
    imagenet = texts(diagrams.draw_resnet(models.resnet18(stem="imagenet", num_classes=1000), image_size=224))
    assert any("max-pool" in text and "64 x 56 x 56" in text for text in imagenet)


def test_the_articles_doubling_block_shows_its_projection_beside_the_path_and_its_shared_batchnorm():
    from course_utils.article import ArticleDoublingBlock

    steps, shortcut = diagrams.block_steps(ArticleDoublingBlock(16))
    assert shortcut == "projection: 1x1 conv 16 → 32, stride 2, no BatchNorm"
    assert [text for text, _ in steps] == ["3x3 conv, 16 → 32, stride 2", "BatchNorm", "ReLU", "3x3 conv, 32 → 32",
                                           "BatchNorm (same weights again)", "ReLU", "+"]
