"""course_utils.article_fixes: the article's recipe and each fix, trained for the same time, on real CIFAR-10."""

import pytest
import torch

from course_utils import article_fixes


def test_each_fix_trains_for_its_time_and_tests_its_way(tiny):
    first, second, course = "the article's way", "+ eval() and a fixed test transform", "+ the laptop network (ResNet-9)"
    runs = article_fixes.run_fixes(tiny, 2.0, only=(first, second, course), num_workers=0, progress=False)
    assert list(runs) == [first, second, course]
    # the first two steps differ only in their test: one training run, tested twice
    assert runs[first].step_loss == runs[second].step_loss and runs[first] is not runs[second]
    assert runs[first].meta["final_test"]["how"] == "as written" and runs[second].meta["final_test"]["how"] == "eval"
    assert [runs[label].config["fix"] for label in runs] == [first, second, course]
    for history in runs.values():
        assert history.meta["stop_reason"] == "time_limit" and 0 <= history.test_acc <= 1
        assert history.meta["final_test"]["images"] == len(tiny.test_labels)
    assert set(runs[first].step_lr) == {0.001}  # the article's rate, never decayed
    rates = runs[course].step_lr  # one cycle over the time: up from 0, then down
    peak = rates.index(max(rates))  # a slow or busy machine fits few steps in 2 s: the shape, not a count
    assert rates[0] == 0 and rates[peak] > 0
    assert rates[:peak + 1] == sorted(rates[:peak + 1]) and rates[peak:] == sorted(rates[peak:], reverse=True)


def test_an_unknown_step_is_named_with_the_steps_there_are(tiny):
    with pytest.raises(ValueError, match="the steps are: the article's way"):
        article_fixes.run_fixes(tiny, 1.0, only=("+ dropout",), progress=False)


def test_every_network_of_the_fixes_classifies_its_inputs():
    for fix in article_fixes.FIXES:
        size = 64 if fix.pipeline == "article" else 32
        assert article_fixes.build_network(fix)(torch.zeros(2, 3, size, size)).shape == (2, 10)
