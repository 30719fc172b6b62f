"""Figures for the course: training curves, run comparisons, image grids, confusion matrices.

* ``plot_history(history)``          loss, accuracy and learning rate of one run, side by side.
* ``compare_runs(runs, metric)``     one metric of several runs, overlaid.
* ``compare_runs_widget(runs)``      the same with controls (runs, metric, smoothing, log scale).
* ``show_images(images, labels)``    a grid of images titled with their classes.
* ``plot_confusion_matrix(cm)``      which classes the model mixes up.
* ``plot_gradient_norms(norms)``     gradient norm per layer, one line per network (notebook 01).
* ``plot_error_vs_depth(runs)``      final test error against depth, plain vs residual (notebook 07).
* ``plot_lesion(results)``           accuracy with one block removed, by position (notebook 07).
* ``plot_loss_slices(steps, losses)`` the loss along a direction in weight space (notebook 07).
* ``plot_ablation(runs)``            images/s and test accuracy of each step of an ablation.
* ``plot_accuracy_vs_time(runs)``    test accuracy against minutes of training.
* ``ema(values, weight)``            the exponential moving average the smoothed curves use.

The static functions return a matplotlib ``Figure`` and never call ``plt.show()``. In a notebook
Jupyter draws a new pyplot figure at the end of the cell *and* shows a returned Figure, so end the
line with ``;`` or assign the result (``fig = plot_history(history)``) to see it once.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from course_utils.data import CIFAR10_CLASSES, denormalize
from course_utils.history import METRICS, History
from course_utils.models import family_and_depth

PER_STEP_METRICS = ("step_loss", "step_lr")
PERCENT_METRICS = ("train_acc", "val_acc", "train_error", "val_error")
METRIC_LABELS = {
    "step_loss": "training loss per step (cross-entropy)",
    "step_lr": "learning rate",
    "train_loss": "train loss, epoch mean (cross-entropy)",
    "train_acc": "train accuracy (%)",
    # The course has no validation split: the per-epoch evaluation runs on test images.
    "val_loss": "test loss (cross-entropy)",
    "val_acc": "test accuracy (%)",
    "epoch_seconds": "time per epoch (s)",
    "images_per_s": "training speed (images/s)",
    "train_error": "train error (%)",
    "val_error": "test error (%)",
}
STEP_AXIS_LABEL = "step (optimiser updates)"
SMOOTHED_METRICS = ("step_loss",)  # what compare_runs' smoothing applies to
HISTORY_SMOOTHING = 0.9  # EMA weight of plot_history's smoothed loss: averages roughly the last 10 steps
MAX_IMAGES = 64


def ema(values: Sequence[float], weight: float) -> np.ndarray:
    """Exponential moving average of ``values``, debiased as in TensorBoard.

    ``average = weight * average + (1 - weight) * value``, then divided by ``1 - weight**n``
    (n = values seen): the average starts at 0, so without that the curve would start near 0.
    The first smoothed value therefore equals the first value. NaN/inf values stay as they are
    and do not enter the average. ``weight=0`` returns the values unchanged.
    """
    values = np.asarray(values, dtype=float)
    smoothed = values.copy()
    average, seen = 0.0, 0
    for i, value in enumerate(values):
        if not math.isfinite(value):
            continue
        seen += 1
        average = weight * average + (1 - weight) * value
        smoothed[i] = average / (1 - weight**seen)
    return smoothed


def plot_history(history: History, title: str | None = None) -> Figure:
    """Three panels: loss per step, accuracy per epoch, learning rate per step.

    The loss panel shows every step's loss (faint), its moving average, and the per-epoch train
    (and test) loss at the step where each epoch ended, so all share one step axis.
    """
    if not history.step_loss:
        raise ValueError("this History has no steps yet: train with fit(...) or load a run record first")
    fig, (loss_ax, acc_ax, lr_ax) = plt.subplots(1, 3, figsize=(11, 3.6), layout="constrained")
    steps = np.arange(1, len(history.step_loss) + 1)
    epochs = np.arange(1, history.epochs_done + 1)
    epoch_ends = history.epoch_ends()

    loss_ax.plot(steps, history.step_loss, color="C0", alpha=0.25, linewidth=0.8, label="train, per step")
    loss_ax.plot(steps, ema(history.step_loss, HISTORY_SMOOTHING), color="C0",
                 label=f"train, smoothed (EMA {HISTORY_SMOOTHING})")
    loss_ax.plot(epoch_ends, history.train_loss, "o--", color="C1", label="train, epoch mean")
    if _has_data(history.val_loss):
        loss_ax.plot(epoch_ends, history.val_loss, "s-", color="C2", label="test")
    loss_ax.set(xlabel=STEP_AXIS_LABEL, ylabel="loss (cross-entropy)", title="loss")
    loss_ax.legend()

    acc_ax.plot(epochs, 100 * np.asarray(history.train_acc), "o--", color="C1", label="train")
    if _has_data(history.val_acc):
        acc_ax.plot(epochs, 100 * np.asarray(history.val_acc), "s-", color="C2", label="test")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy per epoch")
    acc_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if history.epochs_done:
        acc_ax.legend()
    else:
        acc_ax.text(0.5, 0.5, "no complete epoch yet", transform=acc_ax.transAxes, ha="center")

    lr_ax.plot(steps, history.step_lr, color="C3")
    # Step decays (0.1 -> 0.01 -> 0.001) flatten to zero on a linear axis; a log axis shows each stage.
    positive = [lr for lr in history.step_lr if lr > 0]
    if positive and max(positive) / min(positive) > 5:
        lr_ax.set_yscale("log")
    lr_ax.set(xlabel=STEP_AXIS_LABEL, ylabel="learning rate", title="learning rate schedule")

    if title:
        fig.suptitle(title)
    return fig


def compare_runs(runs: dict[str, History], metric: str = "step_loss", smooth: float = 0.0,
                 logy: bool = False, ax: Axes | None = None, by: str | None = None,
                 colors: dict[str, str] | None = None) -> Figure:
    """Overlay one metric of several runs: one line per run, labelled with its key in ``runs``.

    Args:
        runs: run label -> History, e.g. ``{"plain-20": h1, "resnet-20": h2}``.
        metric: one of ``history.METRICS``. ``step_loss`` and ``step_lr`` are recorded per step,
            the others per epoch. Accuracy and error are drawn in %.
        smooth: EMA weight in [0, 1) (see ``ema``); 0 draws the raw values, 0.9 averages ~10 points.
            Only the noisy per-step loss is smoothed: smoothing the learning rate would turn a
            step decay into a slope, and per-epoch values are already averages (a few points).
        logy: logarithmic y axis (useful for losses and error rates that span decades).
        ax: draw into these axes (e.g. one panel of ``plt.subplots(1, 2)``) instead of a new figure.
        by: x axis, ``"step"`` or ``"epoch"``; default ``"step"`` for per-step metrics and
            ``"epoch"`` otherwise. Per-epoch values drawn by step sit at the step each epoch ended;
            per-step values drawn by epoch sit at fractional epochs.
        colors: run label -> matplotlib colour, so that a run keeps its colour in every figure
            (``compare_runs_widget`` passes one per run); default: matplotlib's cycle in order.

    Runs without data for ``metric`` (e.g. ``val_acc`` of a run trained without validation) are
    left out and named in the legend title.
    """
    _check_metric(metric)
    if not runs:
        raise ValueError("runs is empty: pass a dict of run label -> History, e.g. {'resnet-20': history}")
    if not 0 <= smooth < 1:
        raise ValueError(f"smooth must be in [0, 1) (0 = no smoothing, 0.9 = strong), got {smooth!r}")
    by = by or ("step" if metric in PER_STEP_METRICS else "epoch")
    if by not in ("step", "epoch"):
        raise ValueError(f"by must be 'step' or 'epoch', got {by!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")

    if logy:  # a log axis has no place for 0 or a negative value: matplotlib would draw an empty plot
        low = min((value for history in runs.values() for value in history.metric(metric) if math.isfinite(value)),
                  default=None)
        if low is not None and low <= 0:
            raise ValueError(f"logy=True needs values above 0, and {metric} reaches {low:g}: draw it with "
                             f"logy=False (or a metric that stays positive, such as the loss)")
    scale = 100 if metric in PERCENT_METRICS else 1
    marker = None if metric in PER_STEP_METRICS else "o"  # dots show where the few epoch values lie
    smooth = smooth if metric in SMOOTHED_METRICS else 0.0
    skipped = []
    for label, history in runs.items():
        values = history.metric(metric)
        if not _has_data(values):
            skipped.append(label)
            continue
        x = _x_values(history, metric, by, len(values))
        ax.plot(x, scale * ema(values, smooth), label=label, marker=marker, markersize=3,
                color=(colors or {}).get(label))

    ax.set(xlabel=STEP_AXIS_LABEL if by == "step" else "epoch", ylabel=METRIC_LABELS[metric])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if logy:
        ax.set_yscale("log")
        # Losses span less than a decade or two: label 1, 2 and 5 times each power of ten in plain
        # numbers ("2", "0.5"), not matplotlib's "2x10^0" on the minor ticks.
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    note = f"not shown (no {metric} data): {', '.join(skipped)}" if skipped else None
    if len(skipped) < len(runs):
        ax.legend(title=note)
    else:
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center")
    return ax.figure


def compare_runs_widget(runs: dict[str, History], metric: str = "step_loss", *,
                        selected: Sequence[str] | None = None, smooth: float = 0.0, title: str | None = None,
                        force_widget: bool = False) -> "RunComparison | Figure":
    """Interactive ``compare_runs``: pick runs, metric, smoothing and log scale; one figure redraws.

    ``runs`` is read again on every redraw and by the "Refresh runs" button, so runs added to the
    dict later (a run still training) appear, selected. ``selected``: the runs drawn at first (all
    by default), e.g. the learner's own, with references one click away; ``smooth`` and ``title``:
    the first view's smoothing and figure title. Returns a ``RunComparison``: shown as the last
    line of a cell, it displays the controls and, below them, the figure as an ordinary picture
    that every redraw replaces, so a saved notebook (reopened, exported to HTML, on GitHub or the
    course site) keeps the last figure. Without ipywidgets or outside Jupyter, prints why and
    returns the first view as a static figure. ``force_widget`` skips the Jupyter check (for tests).
    """
    _check_metric(metric)
    try:
        import ipywidgets  # noqa: F401  (only to see whether it is installed)
    except ImportError:
        print("compare_runs_widget: ipywidgets is not installed (pip install ipywidgets); "
              "returning a static compare_runs figure instead.")
        return _first_view(runs, metric, selected, smooth, title)
    if not (force_widget or _in_jupyter_front_end()):
        print("compare_runs_widget: no Jupyter front end to show widgets in; "
              "returning a static compare_runs figure instead.")
        return _first_view(runs, metric, selected, smooth, title)
    return RunComparison(runs, metric, selected=selected, smooth=smooth, title=title)


def _first_view(runs: dict[str, History], metric: str, selected: Sequence[str] | None, smooth: float,
                title: str | None) -> Figure:
    chosen = {name: runs[name] for name in (runs if selected is None else selected)}
    figure = compare_runs(chosen, metric, smooth=smooth, colors=run_colors(runs))
    if title:
        figure.axes[0].set_title(title)
    return figure


def run_colors(runs: dict[str, History]) -> dict[str, str]:
    """One colour per run, by its place in ``runs``: a run keeps its colour whichever runs are drawn."""
    return {name: f"C{index % 10}" for index, name in enumerate(runs)}


class RunComparison:
    """The controls and figure behind ``compare_runs_widget``.

    ``.widget`` holds the controls: ``.run_select``, ``.metric_select``, ``.smooth_slider``,
    ``.logy_toggle`` and ``.refresh_button``. The figure is not inside a widget: it is displayed
    below the controls as a picture (``picture()``) through a display handle that each redraw
    updates, because Jupyter saves a picture with the notebook and a widget's output it does not.
    ``.figure`` is the figure of the last redraw (None while no run is selected).
    """

    def __init__(self, runs: dict[str, History], metric: str = "step_loss", *,
                 selected: Sequence[str] | None = None, smooth: float = 0.0, title: str | None = None) -> None:
        import ipywidgets as widgets

        _check_metric(metric)
        unknown = [name for name in (selected or ()) if name not in runs]
        if unknown:
            raise ValueError(f"selected names runs that are not in runs: {', '.join(unknown)}; "
                             f"choose among {', '.join(runs)}")
        self.runs = runs
        self.title = title
        self.figure: Figure | None = None
        self._handle = None  # the display handle of the picture, once shown
        self._refreshing = False
        # Wide enough for the longest run name: a name cut off at the edge reads as another run.
        longest = max((len(name) for name in runs), default=10)
        self.run_select = widgets.SelectMultiple(options=list(runs), value=tuple(runs if selected is None else selected),
                                                 description="runs", rows=min(max(len(runs), 3), 10),
                                                 layout=widgets.Layout(width=f"{max(longest, 12) + 8}ch"))
        self.run_hint = widgets.HTML("<small>Several runs: Ctrl-click (Cmd-click on a Mac) to add or remove one, "
                                     "Shift-click for a range.</small>")
        self.metric_select = widgets.Dropdown(options=METRICS, value=metric, description="metric")
        # continuous_update=False: redraw when the slider is released, not for every pixel dragged.
        self.smooth_slider = widgets.FloatSlider(value=smooth, min=0.0, max=0.99, step=0.01,
                                                 description="smoothing", continuous_update=False)
        self.logy_toggle = widgets.Checkbox(value=False, description="log-scale y")
        self.refresh_button = widgets.Button(description="Refresh runs", icon="refresh")
        for control in (self.run_select, self.metric_select, self.smooth_slider, self.logy_toggle):
            control.observe(self._on_change, names="value")
        self.refresh_button.on_click(lambda _button: self.redraw())
        settings = widgets.VBox([self.metric_select, self.smooth_slider, self.logy_toggle, self.refresh_button])
        self.widget = widgets.HBox([widgets.VBox([self.run_select, self.run_hint]), settings])
        # A saved notebook opened without a kernel cannot draw the controls: the text says what they were.
        self._widget_formats = self.widget._repr_mimebundle_
        self.widget._repr_mimebundle_ = self.formats
        self.redraw()

    def formats(self, **kwargs) -> dict:
        """The controls' display formats, with a plain-text line for readers without a kernel."""
        bundle = self._widget_formats(**kwargs)
        selected = ", ".join(self.run_select.value) or "none"
        bundle["text/plain"] = (f"Controls of an interactive comparison of {len(self.runs)} runs "
                                f"({self.metric_select.value}; selected: {selected}); the figure below is the "
                                f"last view drawn. Run the notebook to use the controls.")
        return bundle

    def picture(self) -> dict:
        """The current view as Jupyter stores it: ``image/png`` of the figure and a plain-text line."""
        if self.figure is None:
            return {"text/plain": "No run selected. Select runs above (or add some to the dict and press "
                                  "'Refresh runs')."}
        png = io.BytesIO()
        self.figure.savefig(png, format="png", bbox_inches="tight")
        return {"image/png": base64.b64encode(png.getvalue()).decode("ascii"),
                "text/plain": f"Comparison of {', '.join(self.run_select.value)} ({self.metric_select.value})"}

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
        self._handle = display(self.picture(), raw=True, display_id=True)

    def refresh(self) -> None:
        """Re-read the run names: keep the current selection and select runs added since."""
        names = list(self.runs)
        if names == list(self.run_select.options):
            return
        known = set(self.run_select.options)
        selected = tuple(n for n in names if n in self.run_select.value or n not in known)
        # Setting options clears the selection; don't redraw for that intermediate state.
        self._refreshing = True
        try:
            self.run_select.options = names
            self.run_select.value = selected
        finally:
            self._refreshing = False

    def redraw(self) -> None:
        """Refresh the run names, draw the selected runs, and replace the picture below the controls."""
        self.refresh()
        if self.figure is not None:
            plt.close(self.figure)  # pyplot keeps every figure open until closed
            self.figure = None
        chosen = {name: self.runs[name] for name in self.run_select.value}
        if chosen:
            self.figure = compare_runs(chosen, self.metric_select.value, smooth=self.smooth_slider.value,
                                       logy=self.logy_toggle.value, colors=run_colors(self.runs))
            if self.title:
                self.figure.axes[0].set_title(self.title)
            plt.close(self.figure)  # drawn through the handle only, not again by the inline backend
        if self._handle is not None:
            self._handle.update(self.picture(), raw=True)

    def _on_change(self, _change: dict) -> None:
        # The slider only means something for the per-step loss (see compare_runs).
        self.smooth_slider.disabled = self.metric_select.value not in SMOOTHED_METRICS
        if not self._refreshing:
            self.redraw()


def show_images(images: torch.Tensor, labels: Sequence[int] | torch.Tensor | None = None,
                classes: Sequence[str] = CIFAR10_CLASSES, predictions: Sequence[int] | torch.Tensor | None = None,
                ncols: int = 8, title: str | None = None) -> Figure:
    """A grid of up to 64 images, each titled with its class.

    ``images``: (N, 3, H, W) or one (3, H, W) image, either uint8 (0-255, as loaded) or float.
    Floats already in [0, 1] are shown as they are; other floats are taken to be ``normalize``d
    batches (what a loader yields) and are ``denormalize``d first. With ``predictions`` each title
    reads "true / predicted", in red where they differ.
    """
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
    if not 1 <= len(images) <= MAX_IMAGES:
        raise ValueError(f"show_images draws 1 to {MAX_IMAGES} images, got {len(images)}; "
                         f"pass a slice, e.g. images[:{MAX_IMAGES}]")
    pixels = _to_unit_range(images.detach().cpu())
    for name, given in (("labels", labels), ("predictions", predictions)):
        if given is not None and len(given) != len(images):
            raise ValueError(f"{len(images)} images but {len(given)} {name}")

    ncols = min(ncols, len(images))
    nrows = math.ceil(len(images) / ncols)
    # Titles at 10-11 pt: a notebook shrinks a figure wider than its column, and 8 pt came out about
    # 7 pixels high in JupyterLab.
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.5 * ncols, 1.8 * nrows), squeeze=False,
                             layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        ax.imshow(pixels[i].permute(1, 2, 0).numpy())
        true = classes[int(labels[i])] if labels is not None else None
        predicted = classes[int(predictions[i])] if predictions is not None else None
        if true is not None and predicted is not None:
            ax.set_title(f"{true} / {predicted}", fontsize=10, color="black" if true == predicted else "red")
        elif true is not None or predicted is not None:
            ax.set_title(true or predicted, fontsize=11)
    if title:
        fig.suptitle(title)
    return fig


def plot_confusion_matrix(cm: torch.Tensor | np.ndarray, classes: Sequence[str] = CIFAR10_CLASSES,
                          normalize: bool = True) -> Figure:
    """Heat map of a (K, K) confusion matrix: row = true class, column = predicted class.

    ``cm[i, j]`` counts images of class i predicted as j (``evaluate(...).confusion_matrix``).
    ``normalize=True`` shows each row as % of its true class (the diagonal is per-class accuracy,
    rounded to whole %); ``False`` shows image counts.
    """
    counts = np.asarray(torch.as_tensor(cm).cpu(), dtype=float)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or len(counts) != len(classes):
        raise ValueError(f"cm must be a square (K, K) matrix with K = len(classes) = {len(classes)}, "
                         f"got shape {counts.shape}; pass classes=... for other data sets")
    if normalize:
        values = 100 * counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # empty rows stay 0
        unit = "% of true class"
    else:
        values, unit = counts, "images"

    fig, ax = plt.subplots(figsize=(8, 7), layout="constrained")
    image = ax.imshow(values, cmap="Blues")
    fig.colorbar(image, ax=ax, label=unit)
    for i in range(len(values)):
        for j in range(len(values)):
            # White text on dark cells, black on light ones, so every number stays readable.
            colour = "white" if values[i, j] > values.max() / 2 else "black"
            ax.text(j, i, f"{values[i, j]:.0f}", ha="center", va="center", fontsize=8, color=colour)
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, classes, rotation=45, ha="right")
    ax.set_yticks(ticks, classes)
    ax.set(xlabel="predicted class", ylabel="true class", title=f"confusion matrix ({unit})")
    return fig


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


def _has_data(values: Sequence[float]) -> bool:
    return any(math.isfinite(v) for v in values)


def _x_values(history: History, metric: str, by: str, count: int) -> np.ndarray:
    """x positions of ``count`` recorded values: steps count from 1, and epoch e sits at the step it
    ended (``History.epoch_ends``: a time-limited last epoch is shorter than the others)."""
    ends = history.epoch_ends()[:count]
    if metric in PER_STEP_METRICS:
        steps = np.arange(1, count + 1)
        # A step's epoch position: whole epochs done before it plus its share of its own epoch.
        return steps if by == "step" else np.interp(steps, np.concatenate([[0.0], ends]), np.arange(len(ends) + 1))
    return ends if by == "step" else np.arange(1, count + 1)


def _to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> /255; floats in [0, 1] unchanged; other floats are normalised and get denormalised."""
    if images.dtype == torch.uint8:
        return images.float() / 255
    if not images.is_floating_point():
        raise ValueError(f"images must be uint8 or float, got {images.dtype}")
    images = images.float()
    if images.min() >= 0 and images.max() <= 1:
        return images
    return denormalize(images)


def _in_jupyter_front_end() -> bool:
    """True in a Jupyter kernel (JupyterLab, Notebook, VS Code, Colab), False in a terminal or script."""
    from IPython import get_ipython

    shell = get_ipython()
    # Colab's shell subclasses ZMQInteractiveShell, so look through the class's ancestors too.
    return shell is not None and any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)


def plot_gradient_norms(norms: dict[str, dict[str, float]], ax: Axes | None = None) -> Figure:
    """Gradient norm of each convolution, input to output, one line per network (log scale).

    ``norms``: network label -> ``analysis.gradient_norms(...)`` result.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for label, per_layer in norms.items():
        ax.plot(range(1, len(per_layer) + 1), list(per_layer.values()), marker="o", markersize=3, label=label)
    ax.set(xlabel="convolution layer (1 = next to the input)", ylabel="gradient norm ||dL/dW|| (log scale)",
           yscale="log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    return ax.figure


def plot_error_vs_depth(runs: dict[str, History], paper: dict[int, float] | None = None,
                        ax: Axes | None = None) -> Figure:
    """Final test error (%) against depth, one line per family (the plain and residual CIFAR networks,
    "plain-D" and "resnet-D" in ``models.build``; other runs are left out), with ``paper``
    ({depth: error %}, e.g. He et al.'s Table 6) drawn alongside."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for family, style in (("plain", "o-"), ("resnet", "s-")):
        points = sorted((network[1], 100 * (1 - history.test_acc)) for history in runs.values()
                        if (network := family_and_depth(history.model_name)) and network[0] == family)
        if points:
            ax.plot(*zip(*points), style, label=f"{family} (this run)")
    if paper:
        ax.plot(list(paper), list(paper.values()), "k^--", label="ResNet, He et al. 2016 Table 6")
    ax.set(xlabel="depth (weighted layers)", ylabel="test error (%)")
    ax.legend()
    return ax.figure


def plot_lesion(results: dict[str, dict[str, float]], ax: Axes | None = None) -> Figure:
    """Test accuracy (%) with one block removed, by the block's position, one line per network.

    ``results``: network label -> ``analysis.lesion_study(...)``; its ``"none removed"`` entry
    becomes a dashed line of the same colour.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for label, accuracies in results.items():
        removed = {name: acc for name, acc in accuracies.items() if name != "none removed"}
        line, = ax.plot(range(1, len(removed) + 1), [100 * acc for acc in removed.values()], "o-", label=label)
        ax.axhline(100 * accuracies["none removed"], color=line.get_color(), linestyle="--", linewidth=1,
                   label=f"{label}, nothing removed")
    ax.set(xlabel="removed block (1 = next to the input)", ylabel="test accuracy (%)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    return ax.figure


def plot_loss_slices(steps: Sequence[float], losses: dict[str, Sequence[float]], ax: Axes | None = None) -> Figure:
    """Loss along one filter-normalised direction (``analysis.loss_along_direction``), one line per network."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for label, values in losses.items():
        ax.plot(list(steps), list(values), marker="o", markersize=3, label=label)
    ax.set(xlabel="step along the direction (0 = trained weights)", ylabel="loss (cross-entropy, log scale)",
           yscale="log")
    ax.legend()
    return ax.figure


def plot_ablation(runs: dict[str, History]) -> Figure:
    """The fast recipe's ablation (notebook 08) as two bar charts, one bar per run in order:
    training images/s (mean over the epochs) and final test accuracy (%) on the whole test split."""
    if not runs:
        raise ValueError("runs is empty: pass the ablation's runs, e.g. runner.run_experiment('fast-ablation')")
    untested = [label for label, history in runs.items()
                if not history.images_per_s or not math.isfinite(history.test_acc)]
    if untested:
        raise ValueError(f"run(s) {', '.join(untested)} have no test accuracy (trained without a val_loader?) or "
                         f"no epoch: the ablation compares tested runs")
    labels = list(runs)
    speed = [float(np.mean(history.images_per_s)) for history in runs.values()]
    accuracy = [100 * history.test_acc for history in runs.values()]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(labels) + 1.5), sharey=True, layout="constrained")
    for ax, values, title, unit in ((axes[0], speed, "training speed", "{:,.0f}"),
                                    (axes[1], accuracy, "test accuracy (%)", "{:.1f}")):
        bars = ax.barh(labels, values, color="tab:blue")
        ax.bar_label(bars, labels=[unit.format(value) for value in values], padding=3)
        ax.set(title=title, xlim=(0, 1.18 * max(values)))
    axes[0].set_xlabel("images/s")
    axes[1].set_xlabel("% of the test images")
    axes[0].invert_yaxis()  # the first switch on top, as in the table
    return fig


def plot_accuracy_vs_time(runs: dict[str, History], target: tuple[float, float] | None = None,
                          ax: Axes | None = None) -> Figure:
    """Test accuracy (%) after each epoch against minutes of training (the epochs' training time
    summed; the test passes are not counted). ``target`` = (minutes, accuracy 0-1) draws the
    goal as a corner: reach the accuracy before the minutes run out."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for label, history in runs.items():
        minutes = np.cumsum(history.epoch_seconds) / 60
        ax.plot(minutes, 100 * np.asarray(history.val_acc), "o-", label=label)
    if target is not None:
        _draw_target(ax, *target)
    ax.set(xlabel="minutes of training", ylabel="test accuracy (%)", xlim=(0, None))
    ax.legend()
    return ax.figure


def plot_accuracy_vs_budget(recipes: dict[str, dict[float, list[float]]], target: tuple[float, float] | None = None,
                            ax: Axes | None = None) -> Figure:
    """Final test accuracy (%) against the minutes a run was given, one line per recipe.

    ``recipes``: ``{recipe: {minutes: [test accuracy 0-1 of each seed]}}``. Each point is the mean
    over its seeds, with a bar from the lowest to the highest seed and the number of seeds beside
    it, so one lucky run does not read as a trend. ``target`` = (minutes, accuracy) as in
    ``plot_accuracy_vs_time``. The minutes axis is logarithmic: budgets of 5, 15 and 60 minutes are
    evenly spaced.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    budgets = sorted({minutes for points in recipes.values() for minutes in points})
    for label, points in recipes.items():
        minutes = np.array(sorted(points), dtype=float)
        accuracies = [100 * np.asarray(points[m]) for m in sorted(points)]
        means = np.array([a.mean() for a in accuracies])
        spread = np.array([[mean - a.min() for mean, a in zip(means, accuracies)],
                           [a.max() - mean for mean, a in zip(means, accuracies)]])
        line = ax.errorbar(minutes, means, yerr=spread, fmt="o-", capsize=4, label=label)
        for m, mean, a in zip(minutes, means, accuracies):
            # Beside the point, in the line's colour, on a white box: readable where lines cross.
            ax.annotate(f"{mean:.1f}% ({len(a)} seed{'s' if len(a) > 1 else ''})", (m, mean),
                        xytext=(8, 0), textcoords="offset points", va="center", fontsize=8,
                        color=line.lines[0].get_color(), bbox=LABEL_BOX)
    if target is not None:
        _draw_target(ax, *target, label_in_corner=True)  # each point's label sits beside it, maybe on the line
    ax.set_xscale("log")
    ax.set_xticks(budgets, [f"{m:g}" for m in budgets])
    ax.minorticks_off()
    ax.set(xlabel="minutes per run (training budget)", ylabel="test accuracy (%), all 10,000 images")
    ax.set_xlim(budgets[0] / 1.3, budgets[-1] * 2.2)  # room on the right for the last points' labels
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # beside the plot, covering nothing
    return ax.figure


LABEL_BOX = dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.85)


def _draw_target(ax: Axes, minutes: float, accuracy: float, label_in_corner: bool = False) -> None:
    """The goal as a corner of dashed lines: reach ``accuracy`` before ``minutes`` run out.

    Its label goes above the left end of the target line, inside the axes: clear of the tick labels,
    and of curves over time, which start below the target and reach it only further right. Points
    near the target (``label_in_corner``) would hide under it there: then it goes to the lower right."""
    ax.axhline(100 * accuracy, color="k", linestyle="--", linewidth=1)
    ax.axvline(minutes, color="k", linestyle="--", linewidth=1)
    text = f"target: {accuracy:.0%} within {minutes:g} min"
    if label_in_corner:
        ax.text(0.99, 0.02, f"dashed lines: {text}", ha="right", va="bottom", transform=ax.transAxes, bbox=LABEL_BOX)
    else:
        ax.text(0.01, 100 * accuracy, text, ha="left", va="bottom", transform=ax.get_yaxis_transform(), bbox=LABEL_BOX)
