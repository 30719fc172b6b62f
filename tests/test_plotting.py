"""course_utils.plotting: what each figure draws, checked on hand-made run records."""

import matplotlib

matplotlib.use("Agg")  # no display needed; must come before pyplot is imported

import base64
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from course_utils import plotting
from course_utils.data import normalize
from course_utils.plotting import (RunComparison, compare_runs, compare_runs_widget, ema, plot_confusion_matrix,
                                   plot_history, show_images)
from course_utils.history import History

NAN = float("nan")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def make_history(final_loss: float = 1.5, validation: bool = True) -> History:
    """3 epochs of 4 steps each: numbers shaped like a short CIFAR-10 run, not produced by training."""
    step_loss = list(np.linspace(2.4, final_loss, 12) + 0.1 * np.sin(np.arange(12)))
    return History(
        step_loss=step_loss,
        step_lr=[0.1] * 8 + [0.01] * 4,
        train_loss=[2.2, 1.9, final_loss + 0.05],
        train_acc=[0.18, 0.30, 0.41],
        val_loss=[2.0, 1.8, 1.7] if validation else [NAN] * 3,
        val_acc=[0.25, 0.33, 0.38] if validation else [NAN] * 3,
        epoch_seconds=[3.1, 3.0, 3.0],
        images_per_s=[165.0, 170.0, 171.0],
    )


def lines_by_label(fig: Figure) -> dict:
    return {line.get_label(): line for line in fig.axes[0].get_lines()}


def test_ema_is_debiased_and_weight_zero_is_identity():
    values = [2.0, 1.0, 3.0, 0.5]
    np.testing.assert_allclose(ema(values, 0.0), values)
    smoothed = ema(values, 0.9)
    assert smoothed[0] == pytest.approx(2.0)  # debiased: no pull towards 0 at the start
    # (0.9 * 0.1 * 2 + 0.1 * 1) / (1 - 0.9**2)
    assert smoothed[1] == pytest.approx((0.18 + 0.1) / 0.19)


def test_ema_passes_nan_through_without_poisoning_later_values():
    smoothed = ema([1.0, NAN, 1.0], 0.5)
    assert math.isnan(smoothed[1])
    assert smoothed[2] == pytest.approx(1.0)


def test_compare_runs_draws_one_labelled_line_per_run_with_raw_values():
    runs = {"plain-20": make_history(1.9), "resnet-20": make_history(1.4)}
    fig = compare_runs(runs)
    lines = lines_by_label(fig)
    assert list(lines) == ["plain-20", "resnet-20"]
    for label, history in runs.items():
        np.testing.assert_allclose(lines[label].get_xdata(), np.arange(1, 13))
        np.testing.assert_allclose(lines[label].get_ydata(), history.step_loss)
    legend_texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend_texts == ["plain-20", "resnet-20"]
    assert "step" in fig.axes[0].get_xlabel()


def test_compare_runs_smoothing_changes_the_curve_but_keeps_its_first_value():
    history = make_history()
    y = lines_by_label(compare_runs({"run": history}, smooth=0.8))["run"].get_ydata()
    np.testing.assert_allclose(y, ema(history.step_loss, 0.8))
    assert not np.allclose(y, history.step_loss)
    assert y[0] == pytest.approx(history.step_loss[0])


def test_compare_runs_shows_accuracy_and_error_in_percent():
    history = make_history()
    fig = compare_runs({"run": history}, metric="val_acc")
    np.testing.assert_allclose(lines_by_label(fig)["run"].get_ydata(), [25.0, 33.0, 38.0])
    assert "%" in fig.axes[0].get_ylabel()
    assert fig.axes[0].get_xlabel() == "epoch"
    fig = compare_runs({"run": history}, metric="train_error")
    np.testing.assert_allclose(lines_by_label(fig)["run"].get_ydata(), [82.0, 70.0, 59.0])


def test_compare_runs_logy_sets_a_log_scale():
    assert compare_runs({"run": make_history()}, logy=True).axes[0].get_yscale() == "log"
    assert compare_runs({"run": make_history()}).axes[0].get_yscale() == "linear"


def test_epoch_metric_by_step_sits_at_the_steps_where_epochs_end():
    fig = compare_runs({"run": make_history()}, metric="train_loss", by="step")
    np.testing.assert_allclose(lines_by_label(fig)["run"].get_xdata(), [4, 8, 12])
    fig = compare_runs({"run": make_history()}, metric="step_loss", by="epoch")
    np.testing.assert_allclose(lines_by_label(fig)["run"].get_xdata()[[0, -1]], [0.25, 3.0])


@pytest.mark.parametrize("kwargs, message", [
    ({"metric": "accuracy"}, "val_error"),  # the message lists the valid metrics
    ({"smooth": 1.0}, "[0, 1)"),
    ({"smooth": -0.1}, "[0, 1)"),
    ({"by": "batch"}, "'step' or 'epoch'"),
])
def test_compare_runs_rejects_bad_arguments_with_helpful_messages(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        compare_runs({"run": make_history()}, **kwargs)


def test_compare_runs_rejects_an_empty_dict():
    with pytest.raises(ValueError, match="runs is empty"):
        compare_runs({})


def test_compare_runs_skips_runs_without_validation_and_says_so():
    runs = {"with val": make_history(), "no val": make_history(validation=False)}
    ax = compare_runs(runs, metric="val_acc").axes[0]
    assert list(lines_by_label(ax.figure)) == ["with val"]
    assert "no val" in ax.get_legend().get_title().get_text()

    ax = compare_runs({"no val": make_history(validation=False)}, metric="val_loss").axes[0]
    assert ax.get_lines() == []
    assert "no val" in ax.texts[0].get_text()


def test_compare_runs_draws_into_given_axes():
    fig, (left, right) = plt.subplots(1, 2)
    returned = compare_runs({"run": make_history()}, metric="train_acc", ax=right)
    assert returned is fig
    assert len(right.get_lines()) == 1 and len(left.get_lines()) == 0


def test_plot_history_has_three_labelled_panels():
    fig = plot_history(make_history(), title="ResNet-20")
    loss_ax, acc_ax, lr_ax = fig.axes
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
    assert "%" in acc_ax.get_ylabel()
    assert [text.get_text() for text in fig.texts] == ["ResNet-20"]  # the suptitle
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert len(labels) == 4 and "test" in labels  # raw, smoothed, train per epoch, test (no validation split)
    epoch_line = loss_ax.get_lines()[2]
    np.testing.assert_allclose(epoch_line.get_xdata(), [4, 8, 12])
    np.testing.assert_allclose(acc_ax.get_lines()[0].get_ydata(), [18.0, 30.0, 41.0])
    assert lr_ax.get_yscale() == "log"  # a step decay 0.1 -> 0.01


def test_plot_history_without_validation_draws_no_validation_lines():
    fig = plot_history(make_history(validation=False))
    assert all(line.get_label() != "test" for ax in fig.axes for line in ax.get_lines())


def test_plot_history_of_an_empty_history_says_to_train_first():
    with pytest.raises(ValueError, match="fit"):
        plot_history(History())


def test_show_images_titles_are_class_names():
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    fig = show_images(images, labels=torch.tensor([0, 3, 5, 9, 1]), ncols=3)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["airplane", "cat", "dog", "truck", "automobile", ""]  # 2 rows of 3, one empty


def test_show_images_marks_wrong_predictions_red():
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    fig = show_images(images, labels=[3, 5, 8], predictions=[3, 3, 8])
    assert [ax.get_title() for ax in fig.axes] == ["cat / cat", "dog / cat", "ship / ship"]
    colours = [ax.title.get_color() for ax in fig.axes]
    assert to_rgba(colours[1]) == to_rgba("red")
    assert to_rgba(colours[0]) != to_rgba("red") and to_rgba(colours[2]) != to_rgba("red")


def test_show_images_denormalises_normalised_floats_and_keeps_unit_floats():
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    expected = images.permute(0, 2, 3, 1).float().numpy() / 255
    for given in (images, normalize(images), images.float() / 255):
        fig = show_images(given)
        shown = np.stack([ax.get_images()[0].get_array() for ax in fig.axes])
        np.testing.assert_allclose(shown, expected, atol=1e-5)


def test_show_images_refuses_more_than_64_images():
    with pytest.raises(ValueError, match=r"images\[:64\]"):
        show_images(torch.zeros(65, 3, 32, 32, dtype=torch.uint8))


def test_confusion_matrix_annotations_are_counts_or_row_percentages():
    cm = torch.tensor([[8, 2], [1, 3]])
    classes = ("cat", "dog")
    ax = plot_confusion_matrix(cm, classes=classes, normalize=False).axes[0]
    assert [t.get_text() for t in ax.texts] == ["8", "2", "1", "3"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog"]
    assert ax.get_ylabel() == "true class" and ax.get_xlabel() == "predicted class"

    fig = plot_confusion_matrix(cm, classes=classes)
    assert [t.get_text() for t in fig.axes[0].texts] == ["80", "20", "25", "75"]
    assert len(fig.axes) == 2  # the heat map and its colour bar


def test_confusion_matrix_of_the_wrong_size_says_how_to_fix_it():
    with pytest.raises(ValueError, match="classes="):
        plot_confusion_matrix(np.eye(3))


def test_widget_falls_back_to_a_static_figure_without_jupyter(capsys):
    result = compare_runs_widget({"run": make_history()})
    assert isinstance(result, Figure)
    assert "no Jupyter front end" in capsys.readouterr().out


def test_widget_is_a_run_comparison_with_its_controls_when_forced():
    ipywidgets = pytest.importorskip("ipywidgets")
    comparison = compare_runs_widget({"run": make_history()}, force_widget=True)
    assert isinstance(comparison, RunComparison) and isinstance(comparison.widget, ipywidgets.HBox)


def test_the_figure_is_an_ordinary_picture_below_the_controls_that_each_redraw_replaces():
    # A saved notebook keeps pictures, not widget outputs: reopened, exported or on the site, the
    # reader sees the last figure drawn.
    pytest.importorskip("ipywidgets")
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    InteractiveShell.instance()  # display() publishes to a shell, as in a kernel
    comparison = RunComparison({"plain-20": make_history(1.9), "resnet-20": make_history(1.2)})
    with capture_output() as shown:
        comparison._ipython_display_()
    controls, picture = shown.outputs
    assert "application/vnd.jupyter.widget-view+json" in controls.data  # a live kernel shows the controls
    assert controls.data["text/plain"].startswith("Controls of an interactive comparison of 2 runs (step_loss; "
                                                  "selected: plain-20, resnet-20)")
    assert base64.b64decode(picture.data["image/png"]).startswith(b"\x89PNG")
    first = picture.data["image/png"]

    updates = []
    comparison._handle.update = lambda bundle, **kwargs: updates.append(bundle)  # record what the handle is sent
    comparison.run_select.value = ("resnet-20",)
    assert updates[-1]["image/png"] != first and updates[-1]["text/plain"] == "Comparison of resnet-20 (step_loss)"
    comparison.run_select.value = ()
    assert "image/png" not in updates[-1] and "No run selected" in updates[-1]["text/plain"]


def test_a_run_keeps_its_colour_whichever_runs_are_drawn():
    pytest.importorskip("ipywidgets")
    comparison = RunComparison({"plain-20": make_history(1.9), "resnet-20": make_history(1.2)})
    colour = lines_by_label(comparison.figure)["resnet-20"].get_color()
    comparison.run_select.value = ("resnet-20",)
    assert lines_by_label(comparison.figure)["resnet-20"].get_color() == colour


def test_log_scale_labels_are_plain_numbers():
    figure = compare_runs({"run": make_history(1.9)}, logy=True)
    figure.canvas.draw()
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels() if label.get_text()]
    assert labels and all("times" not in label and "10^" not in label for label in labels), labels
    float(labels[0].replace("\u2212", "-"))  # "2", "0.5": a number as written


def test_widget_picks_up_new_runs_and_redraws_on_every_control():
    pytest.importorskip("ipywidgets")
    runs = {"plain-20": make_history(1.9)}
    comparison = RunComparison(runs)
    assert comparison.run_select.options == ("plain-20",)
    assert list(lines_by_label(comparison.figure)) == ["plain-20"]

    runs["resnet-20"] = make_history(1.4)  # a run finished after the widget was made
    comparison.refresh()
    assert comparison.run_select.options == ("plain-20", "resnet-20")
    assert comparison.run_select.value == ("plain-20", "resnet-20")

    comparison.run_select.value = ("resnet-20",)
    assert list(lines_by_label(comparison.figure)) == ["resnet-20"]
    runs["resnet-56"] = make_history(1.3)
    comparison.redraw()  # a redraw also re-reads the dict; the deselected run stays deselected
    assert comparison.run_select.value == ("resnet-20", "resnet-56")

    comparison.metric_select.value = "val_acc"
    assert "accuracy" in comparison.figure.axes[0].get_ylabel()
    assert comparison.smooth_slider.disabled  # per-epoch values are not smoothed
    comparison.smooth_slider.value = 0.5
    np.testing.assert_allclose(lines_by_label(comparison.figure)["resnet-20"].get_ydata(),
                               100 * np.array([0.25, 0.33, 0.38]))
    comparison.metric_select.value = "step_loss"
    assert not comparison.smooth_slider.disabled
    comparison.logy_toggle.value = True
    assert comparison.figure.axes[0].get_yscale() == "log"


def test_widget_with_no_run_selected_draws_nothing():
    pytest.importorskip("ipywidgets")
    comparison = RunComparison({"run": make_history()})
    comparison.run_select.value = ()
    assert comparison.figure is None
    assert len(plt.get_fignums()) == 0  # the previous figure was closed, not leaked


def test_widget_rejects_an_unknown_metric():
    with pytest.raises(ValueError, match="step_loss"):
        compare_runs_widget({"run": make_history()}, metric="loss")


def test_metric_labels_cover_every_metric():
    from course_utils.history import METRICS

    assert set(plotting.METRIC_LABELS) == set(METRICS)


def test_plot_gradient_norms_draws_one_log_scale_line_per_network():
    norms = {"plain": {"conv1": 10.0, "conv2": 1.0, "conv3": 0.1}, "residual": {"conv1": 1.0, "conv2": 1.0, "conv3": 1.0}}
    fig = plotting.plot_gradient_norms(norms)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == ["plain", "residual"]
    assert list(ax.get_lines()[0].get_ydata()) == [10.0, 1.0, 0.1]
    assert list(ax.get_lines()[0].get_xdata()) == [1, 2, 3]


def test_depth_lesion_and_slice_plots_draw_what_they_are_given():
    def record(model, accuracy):  # the architecture as fit records it, from the model itself
        return History(val_acc=[accuracy], config={"model_name": model})

    runs = {"plain-20": record("plain-20", 0.5), "plain-56": record("plain-56", 0.4),
            "resnet-20": record("resnet-20", 0.6), "resnet-56": record("resnet-56", 0.7),
            "resnet18": record("resnet18", 0.9)}  # not of the two CIFAR families: left out
    ax = plotting.plot_error_vs_depth(runs, paper={20: 8.75, 56: 6.97}).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["plain (this run)"].get_xdata()) == [20, 56]
    assert list(lines["resnet (this run)"].get_ydata()) == pytest.approx([40.0, 30.0])
    assert list(lines["ResNet, He et al. 2016 Table 6"].get_ydata()) == [8.75, 6.97]

    ax = plotting.plot_lesion({"resnet": {"none removed": 0.9, "a": 0.8, "b": 0.1}}).axes[0]
    assert list(ax.get_lines()[0].get_ydata()) == pytest.approx([80.0, 10.0])

    ax = plotting.plot_loss_slices([-1, 0, 1], {"plain": [3.0, 1.0, 4.0]}).axes[0]
    assert ax.get_yscale() == "log" and list(ax.get_lines()[0].get_ydata()) == [3.0, 1.0, 4.0]


def test_plot_ablation_draws_one_bar_per_run_in_order_with_its_numbers():
    runs = {"course default": make_history(), "+ channels_last": make_history()}
    runs["+ channels_last"].images_per_s = [240.0, 250.0, 260.0]
    fig = plotting.plot_ablation(runs)
    speed, accuracy = fig.axes
    assert [tick.get_text() for tick in speed.get_yticklabels()] == list(runs)
    assert [bar.get_width() for bar in speed.patches] == pytest.approx([506 / 3, 250.0])
    assert [bar.get_width() for bar in accuracy.patches] == pytest.approx([38.0, 38.0])
    assert [text.get_text() for text in speed.texts] == ["169", "250"]


def test_plot_accuracy_vs_time_puts_epochs_at_cumulative_training_minutes():
    fig = plotting.plot_accuracy_vs_time({"seed 0": make_history()}, target=(15, 0.8))
    line = lines_by_label(fig)["seed 0"]
    np.testing.assert_allclose(line.get_xdata(), np.cumsum([3.1, 3.0, 3.0]) / 60)
    np.testing.assert_allclose(line.get_ydata(), [25.0, 33.0, 38.0])
    target_lines = [drawn for drawn in fig.axes[0].get_lines() if drawn.get_linestyle() == "--"]
    assert sorted(tuple(drawn.get_xdata()) + tuple(drawn.get_ydata()) for drawn in target_lines) == \
        sorted([(0, 1, 80, 80), (15, 15, 0, 1)])


def test_compare_runs_smooths_the_step_loss_only():
    history = History(step_loss=[2.0, 1.0, 2.0, 1.0], step_lr=[0.1, 0.1, 0.01, 0.01])
    lr = lines_by_label(compare_runs({"run": history}, "step_lr", smooth=0.9))["run"].get_ydata()
    assert list(lr) == [0.1, 0.1, 0.01, 0.01]  # a step decay stays a step
    loss = lines_by_label(compare_runs({"run": history}, "step_loss", smooth=0.9))["run"].get_ydata()
    assert list(loss) != [2.0, 1.0, 2.0, 1.0]


def test_plot_accuracy_vs_budget_draws_seed_means_with_their_spread():
    recipes = {"new": {5: [0.79, 0.81], 15: [0.86, 0.87, 0.88]}, "old": {15: [0.82]}}
    fig = plotting.plot_accuracy_vs_budget(recipes, target=(15, 0.85))
    ax = fig.axes[0]
    bars = {container.get_label(): container for container in ax.containers}["new"]
    new = bars.lines[0]  # the line through the means
    np.testing.assert_allclose(new.get_xdata(), [5, 15])
    np.testing.assert_allclose(new.get_ydata(), [80.0, 87.0])
    segments = bars.lines[2][0].get_segments()  # one vertical bar per point: lowest to highest seed
    np.testing.assert_allclose([[float(s[0][1]), float(s[1][1])] for s in segments], [[79.0, 81.0], [86.0, 88.0]])
    assert "82.0% (1 seed)" in [t.get_text() for t in ax.texts]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["5", "15"]


def test_the_budget_plots_target_label_hides_no_point_label():
    # Notebook 08's plot: a point just above the target at its own minutes, as the laptop recipe's
    # 15-minute records are; the long names make a wide legend beside the axes. Above the target
    # line's left end, the label covered that point's.
    recipes = {"ResNet18 width 16": {5: [0.727, 0.729], 15: [0.819, 0.829, 0.829]},
               "ResNet-9 width 16, first recipe": {5: [0.792, 0.794], 15: [0.856, 0.858, 0.865]},
               "ResNet-9 width 16, the laptop recipe": {15: [0.869, 0.871, 0.876]},
               "ResNet-9 width 24, first recipe": {5: [0.7385], 60: [0.891]}}
    fig = plotting.plot_accuracy_vs_budget(recipes, target=(15, 0.87))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = fig.axes[0].texts
    target = next(t for t in texts if "target" in t.get_text())
    points = [t for t in texts if t is not target]
    assert len(points) == 7
    assert not any(target.get_window_extent(renderer).overlaps(t.get_window_extent(renderer)) for t in points)
    assert target.get_text() == "dashed lines: target: 87% within 15 min"


def test_epochs_of_a_time_limited_run_are_drawn_where_they_ended():
    # 3 epochs: 10, 10 and 3 steps (the time limit struck early in the third).
    history = make_history()
    history.step_loss, history.step_lr = [2.0] * 23, [0.1] * 23
    history.epoch_end_steps = [10, 20, 23]
    np.testing.assert_array_equal(plotting._x_values(history, "val_acc", "step", 3), [10, 20, 23])
    by_epoch = plotting._x_values(history, "step_loss", "epoch", 23)
    assert by_epoch[9] == 1.0 and by_epoch[19] == 2.0 and by_epoch[-1] == 3.0 and by_epoch[21] == pytest.approx(2 + 2 / 3)


def test_a_record_from_before_epoch_end_steps_is_read_from_what_each_epoch_trained():
    from pathlib import Path

    from course_utils import records

    folder = Path(__file__).resolve().parent.parent / "data" / "results" / "laptop-resnet9" / "seed-0"
    history = next(iter(records.load_runs(folder, "laptop").values()))
    assert history.meta.get("stop_reason") == "time_limit" and not history.epoch_end_steps  # an older record
    full_epoch = -(-history.config["train_images"] // history.config["batch_size"])
    ends = history.epoch_ends()
    assert ends[-1] == len(history.step_loss)
    assert list(np.diff(ends[:-1])) == [full_epoch] * (len(ends) - 2) and ends[0] == full_epoch
    assert ends[-1] - ends[-2] < full_epoch  # the last epoch, cut by the time limit, is the short one


def test_a_log_axis_refuses_values_it_cannot_draw_and_the_ablation_refuses_untested_runs():
    from course_utils.history import History

    zero = History(step_loss=[0.0, 0.0], step_lr=[0.1, 0.1])
    with pytest.raises(ValueError, match="logy=True needs values above 0, and step_loss reaches 0"):
        plotting.compare_runs({"zero": zero}, "step_loss", logy=True)
    plotting.compare_runs({"zero": zero}, "step_loss")  # a linear axis draws it
    with pytest.raises(ValueError, match="runs is empty"):
        plotting.plot_ablation({})
    untested = History(train_loss=[2.0], train_acc=[0.2], val_loss=[math.nan], val_acc=[math.nan],
                       epoch_seconds=[1.0], images_per_s=[100.0], epoch_end_steps=[4])
    with pytest.raises(ValueError, match="run\\(s\\) course default have no test accuracy"):
        plotting.plot_ablation({"course default": untested})
    plt.close("all")
