"""Sentences that read a lesson out of a run without reading noise as a result.

Two runs that differ only in their seed still end at different losses. A notebook trains one seed,
so it cannot measure that spread itself: each verdict compares a difference with a **margin**, the
spread measured over seeds of the same experiment in quick mode (``benchmarks/quick_seeds.py``,
tables in benchmarks/README.md), and calls a smaller difference "no difference at this scale". The
lr-decay runs share their start, so theirs is the difference chance alone makes after the decay
(``benchmarks/lr_decay_noise.py``).
A verdict is ``shown`` only when every part of the lesson clears its margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from course_utils.history import FINAL_LOSS_STEPS, History
from course_utils.models import family_and_depth

# Margins per experiment and quantity. Two runs that differ only in their seed differ by about
# sqrt(2) x sigma, where sigma is a run's seed-to-seed standard deviation; the margin is that, with
# sigma the largest among the experiment's runs, measured over seeds 0-4 in quick mode on 2 CPU cores
# (benchmarks/quick_seeds.py; benchmarks/README.md, "Lessons over seeds"). lr-decay is the exception:
# its two runs are one run until the decay, so their difference is read against the root mean square
# difference between the constant-LR run and itself with other batches and crops after the decay
# (benchmarks/lr_decay_noise.py), not against the spread of whole runs from different seeds.
# Losses are cross-entropy, errors and accuracies fractions.
MARGINS: dict[str, dict[str, float]] = {
    "degradation": {"final_loss": 0.09},  # sigma 0.066 (plain-20, ten seeds on two machines)
    "block-defects": {"final_loss": 0.04, "test_accuracy": 0.06},  # sigma 0.025 (paper's), 4.1 points (article's)
    "shortcuts": {"final_loss": 0.10, "test_accuracy": 0.03},  # sigma 0.072 and 1.8 points (option B)
    "depth": {"final_loss": 0.09},  # sigma 0.061 (plain-32, ten seeds on two machines)
    "lr-decay": {"final_loss": 0.05, "test_accuracy": 0.03},  # chance 0.043 and 2.6 points rms (seeds 0-9)
}

# What "final training loss" means in every verdict (History.final_loss): a notebook's epoch log
# prints epoch averages, which differ from it, so each verdict says which loss it read.
FINAL_LOSS = f"mean of the last {FINAL_LOSS_STEPS} steps"


@dataclass(frozen=True)
class Verdict:
    """``shown``: the run shows the lesson; ``text``: what it shows, in Markdown, with its numbers."""

    shown: bool
    text: str


def compare(difference: float, margin: float, more: str, less: str) -> str:
    """``more`` / ``less`` when ``difference`` clears ``margin`` either way, else "within the noise of"."""
    if difference > margin:
        return more
    if difference < -margin:
        return less
    return "within the noise of"


def degradation(runs: dict[str, History]) -> Verdict:
    """Plain-56 ends with a higher training loss than plain-20; with shortcuts the 56-layer network
    ends no worse than ResNet-20 and below plain-56."""
    margin = MARGINS["degradation"]["final_loss"]
    loss = {label: runs[label].final_loss() for label in ("plain-20", "plain-56", "resnet-20", "resnet-56")}
    plain_gap = loss["plain-56"] - loss["plain-20"]
    residual_gap = loss["resnet-56"] - loss["resnet-20"]
    rescued = loss["plain-56"] - loss["resnet-56"]
    degraded = plain_gap > margin
    shown = degraded and residual_gap <= margin and rescued > margin
    text = ("**Degradation seen.** " if degraded else "**No degradation at this scale.** ") + (
        f"Plain-56 ends with a training loss ({FINAL_LOSS}) of {loss['plain-56']:.3f}, plain-20 with {loss['plain-20']:.3f}: "
        f"a difference of {plain_gap:+.3f}, where two runs differing only in their seed differ by about {margin}. "
        f"With shortcuts, ResNet-56 ({loss['resnet-56']:.3f}) is "
        f"{compare(-rescued, margin, 'above', 'below')} its plain twin, and "
        f"{compare(residual_gap, margin, 'above', 'below')} ResNet-20 ({loss['resnet-20']:.3f}).")
    return Verdict(shown, text)


def depth(runs: dict[str, History]) -> Verdict:
    """Plain networks' final training loss rises with depth (deepest vs shallowest); residual
    networks' does not. The loss, as in ``degradation``: over seeds it varies less than the
    training error of the last epoch, which averages over a whole epoch of changing weights."""
    def losses(family: str) -> dict[int, float]:
        found = {network[1]: history.final_loss() for history in runs.values()
                 if (network := family_and_depth(history.model_name)) and network[0] == family}
        return dict(sorted(found.items()))

    margin = MARGINS["depth"]["final_loss"]
    plain, residual = losses("plain"), losses("resnet")
    if len(plain) < 2 or len(residual) < 2:
        return Verdict(False, "This comparison needs at least two depths of each family.")
    plain_rise = plain[max(plain)] - plain[min(plain)]
    residual_rise = residual[max(residual)] - residual[min(residual)]
    shown = plain_rise > margin and residual_rise <= margin

    def series(values: dict[int, float]) -> str:
        return ", ".join(f"{loss:.3f}" for loss in values.values())

    text = (f"Final training loss ({FINAL_LOSS}) from {min(plain)} to {max(plain)} layers: plain {series(plain)}; "
            f"residual {series(residual)}. The deepest plain network is "
            f"{compare(plain_rise, margin, 'worse than', 'better than')} the shallowest ({plain_rise:+.3f}); "
            f"the deepest residual network is {compare(residual_rise, margin, 'worse than', 'better than')} "
            f"the shallowest ({residual_rise:+.3f}; two runs differing only in their seed differ by about "
            f"{margin}).")
    return Verdict(shown, ("**Depth hurts plain networks, not residual ones.** " if shown else "") + text)


def lr_decay(runs: dict[str, History]) -> Verdict:
    """The decayed run ends with a lower training loss and a higher test accuracy than the
    constant-LR run from the same start."""
    margins = MARGINS["lr-decay"]
    constant = next(history for label, history in runs.items() if label.endswith("constant LR"))
    decayed = next(history for label, history in runs.items() if not label.endswith("constant LR"))
    loss_gain = constant.final_loss() - decayed.final_loss()
    accuracy_gain = decayed.test_acc - constant.test_acc
    shown = loss_gain > margins["final_loss"] and accuracy_gain > margins["test_accuracy"]
    text = (f"With the decay the run ends at a training loss ({FINAL_LOSS}) of {decayed.final_loss():.3f} and "
            f"{decayed.test_acc:.1%} test accuracy; at a constant learning rate at "
            f"{constant.final_loss():.3f} and {constant.test_acc:.1%}. So the decayed run's loss is "
            f"{compare(-loss_gain, margins['final_loss'], 'above', 'below')} the constant run's, and its accuracy "
            f"{compare(accuracy_gain, margins['test_accuracy'], 'above', 'below')} it (two runs from this start "
            f"that differ after the decay only by chance, in their batches and crops, differ by about "
            f"{margins['final_loss']} in loss and {100 * margins['test_accuracy']:.0f} points in accuracy).")
    return Verdict(shown, ("**The decay helps.** " if shown else "") + text)


def compare_two(first: History, second: History, names: tuple[str, str], margins: dict[str, float]) -> tuple[str, set]:
    """Final training loss and test accuracy of two runs, each against its seed margin: the sentence
    with the numbers, and what each measure says (``names[0]``, ``names[1]`` or "within the noise of")."""
    loss_gap = first.final_loss() - second.final_loss()  # > 0: the second fits its training images better
    accuracy_gap = second.test_acc - first.test_acc  # > 0: the second tests better
    text = (f"Final training loss ({FINAL_LOSS}): {names[0]} {first.final_loss():.3f}, {names[1]} {second.final_loss():.3f} "
            f"(difference {loss_gap:+.3f}; two runs differing only in their seed differ by about "
            f"{margins['final_loss']}). Test accuracy: {first.test_acc:.1%} and {second.test_acc:.1%} "
            f"({100 * accuracy_gap:+.1f} points; seed noise about {100 * margins['test_accuracy']:.0f} points). ")
    says = {compare(loss_gap, margins["final_loss"], names[1], names[0]),
            compare(accuracy_gap, margins["test_accuracy"], names[1], names[0])}
    return text, says


def block_defects(runs: dict[str, History]) -> Verdict:
    """The network of the paper's blocks does better than the one of the article's blocks (shared
    weights, ReLU before the addition): lower training loss or higher test accuracy beyond the
    noise, and worse in neither. Both measures are read: a network with half the parameters can
    fit its training images as well and still test worse, so the loss alone says nothing here."""
    article = next(history for label, history in runs.items() if label.startswith("article-blocks-"))
    paper = next(history for label, history in runs.items() if label.startswith("paper-blocks-"))
    names = ("the article's blocks", "the paper's")
    text, says = compare_two(article, paper, names, MARGINS["block-defects"])
    if says == {"within the noise of"}:
        text += "**At this scale the two blocks do not separate**: both differences are within the noise between seeds."
    elif says == set(names):
        text += ("**The two measures disagree**: one favours the article's blocks, the other the paper's, so at this "
                 "scale the run cannot say which block is better.")
    elif names[1] in says:
        text += "**The paper's blocks do better**, beyond the noise between seeds, and no worse on the other measure."
    else:
        text += ("The article's network is ahead on one measure beyond the noise, the other is within it: a network "
                 "this small and this briefly trained does not show what its defects cost.")
    return Verdict(names[1] in says and names[0] not in says, text)


def shortcuts(runs: dict[str, History]) -> Verdict:
    """Option B (projection shortcuts) against option A (zero padding) in the same network."""
    option_a = next(history for label, history in runs.items() if not label.endswith("-B"))
    option_b = next(history for label, history in runs.items() if label.endswith("-B"))
    names = ("option A", "option B")
    text, says = compare_two(option_a, option_b, names, MARGINS["shortcuts"])
    if says == {"within the noise of"}:
        text += "**At this scale the two shortcuts do not separate.**"
    elif says == set(names):
        text += "**The two measures disagree**: at this scale the run cannot say which shortcut is better."
    else:
        better = next(name for name in names if name in says)
        text += f"**{better[0].upper()}{better[1:]} does better here**, beyond the noise between seeds."
    return Verdict(names[1] in says and names[0] not in says, text)


VERDICTS: dict[str, Callable[[dict[str, History]], Verdict]] = {
    "degradation": degradation,
    "block-defects": block_defects,
    "shortcuts": shortcuts,
    "depth": depth,
    "lr-decay": lr_decay,
}
