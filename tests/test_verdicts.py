"""course_utils.verdicts: a difference is called an effect only when it clears the noise margin."""

from course_utils import models, verdicts
from course_utils.history import History


def run(final_loss: float, train_error: float = 0.5, test_accuracy: float = 0.5, model: str | None = None) -> History:
    """A run record with only what the verdicts read: step losses, final train and test accuracy,
    and for ``model`` (e.g. "plain-56") the name the model was built by, as fit records it."""
    config = {"model_name": models.build(model).model_name} if model else {}
    return History(step_loss=[final_loss] * 10, train_acc=[1 - train_error], val_acc=[test_accuracy], config=config)


def test_degradation_needs_each_part_of_the_lesson_beyond_the_margin():
    margin = verdicts.MARGINS["degradation"]["final_loss"]
    clear = {"plain-20": run(1.80), "plain-56": run(1.80 + 3 * margin),
             "resnet-20": run(1.75), "resnet-56": run(1.75 + margin / 2)}  # ResNet-56 within the noise
    verdict = verdicts.degradation(clear)
    assert verdict.shown and verdict.text.startswith("**Degradation seen.**")
    assert "ResNet-20" in verdict.text and "within the noise of ResNet-20" in verdict.text

    small_gap = {**clear, "plain-56": run(1.80 + margin / 2)}
    verdict = verdicts.degradation(small_gap)
    assert not verdict.shown and verdict.text.startswith("**No degradation at this scale.**")

    resnet_56_worse = {**clear, "resnet-56": run(1.75 + 2 * margin)}
    assert not verdicts.degradation(resnet_56_worse).shown


def test_depth_compares_deepest_with_shallowest_of_each_family():
    margin = verdicts.MARGINS["depth"]["final_loss"]
    runs = {"a": run(2.00, model="plain-20"), "b": run(2.00 + 2 * margin, model="plain-56"),
            "c": run(2.05, model="resnet-20"), "d": run(2.05 - 2 * margin, model="resnet-56")}
    verdict = verdicts.depth(runs)  # the depths come from the recorded architectures, not the labels
    assert verdict.shown and "residual network is better than the shallowest" in verdict.text
    runs["b"] = run(2.00 + margin / 2, model="plain-56")
    verdict = verdicts.depth(runs)
    assert not verdict.shown and "plain network is within the noise of the shallowest" in verdict.text
    one_depth = {"plain-20": run(2.0, model="plain-20"), "resnet-20": run(2.0, model="resnet-20")}
    assert not verdicts.depth(one_depth).shown  # one depth: nothing to say


def test_lr_decay_needs_a_lower_loss_and_a_higher_accuracy():
    margins = verdicts.MARGINS["lr-decay"]
    constant = run(1.40, test_accuracy=0.40)
    decayed = run(1.40 - 2 * margins["final_loss"], test_accuracy=0.40 + 2 * margins["test_accuracy"])
    verdict = verdicts.lr_decay({"resnet18 constant LR": constant, "resnet18 StepLR": decayed})
    assert verdict.shown and verdict.text.startswith("**The decay helps.**")
    same_accuracy = run(decayed.final_loss(), test_accuracy=0.40 + margins["test_accuracy"] / 2)
    verdict = verdicts.lr_decay({"resnet18 constant LR": constant, "resnet18 StepLR": same_accuracy})
    assert not verdict.shown and "its accuracy within the noise of it" in verdict.text


def test_block_defects_reads_the_loss_and_the_accuracy_and_never_the_loss_alone():
    margins = verdicts.MARGINS["block-defects"]
    loss, points = margins["final_loss"], margins["test_accuracy"]

    def verdict(article_loss, paper_loss, article_accuracy=0.3, paper_accuracy=0.3):
        return verdicts.block_defects({"article-blocks-3": run(article_loss, test_accuracy=article_accuracy),
                                       "paper-blocks-3": run(paper_loss, test_accuracy=paper_accuracy)})

    close = verdict(1.90, 1.90 - loss / 2)
    assert not close.shown and "At this scale the two blocks do not separate" in close.text
    assert verdict(1.90, 1.90 - 2 * loss).shown  # the paper's fit better, accuracy level
    assert verdict(1.90, 1.90, 0.30, 0.30 + 2 * points).shown  # the paper's test better, loss level

    # notebook 02, seed 0: the article's lower loss, the paper's higher accuracy
    disagree = verdict(1.881, 1.923, 0.245, 0.305 + points)
    assert not disagree.shown and "The two measures disagree" in disagree.text
    assert "24.5%" in disagree.text  # the accuracy is printed beside the loss
    article_loss_only = verdict(1.85, 1.85 + 2 * loss)
    assert not article_loss_only.shown and "ahead on one measure" in article_loss_only.text
    assert "train better" not in article_loss_only.text


def test_shortcuts_reads_both_measures_of_option_a_against_option_b():
    margins = verdicts.MARGINS["shortcuts"]
    level = verdicts.shortcuts({"resnet-20": run(1.9, test_accuracy=0.3), "resnet-20-B": run(1.9, test_accuracy=0.3)})
    assert not level.shown and "do not separate" in level.text and "option A 1.900" in level.text
    better = verdicts.shortcuts({"resnet-20": run(1.9, test_accuracy=0.3),
                                 "resnet-20-B": run(1.9 - 2 * margins["final_loss"], test_accuracy=0.3)})
    assert better.shown and "Option B does better here" in better.text
