"""course_utils.training: fit, evaluate and measure_training_speed, on real CIFAR-10 subsets (the run
record itself: test_history.py; devices and precision: test_devices.py)."""

import math
import re

import pytest
import torch

from course_utils import training
from course_utils.data import TensorLoader
from course_utils.models import cifar_resnet, resnet18
from course_utils.devices import Speed
from course_utils.training import TrainingDiverged, evaluate, fit, measure_training_speed, seed_everything


def small_model(seed=0):
    seed_everything(seed)
    return resnet18(width=4)


def loaders(tiny, batch_size=64):
    train = TensorLoader(tiny.train_images, tiny.train_labels, batch_size=batch_size, seed=0)
    test = TensorLoader(tiny.test_images, tiny.test_labels, batch_size=50, augment=False, shuffle=False)
    return train, test


def sgd(model, lr=0.05):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)



def test_fit_records_steps_and_epochs_and_learns(tiny):
    model = small_model()
    train, test = loaders(tiny)
    history = fit(model, train, epochs=3, optimizer=sgd(model), val_loader=test, progress=False)
    assert len(history.step_loss) == len(history.step_lr) == 3 * len(train)
    for column in ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds", "images_per_s"):
        assert len(getattr(history, column)) == 3
    assert history.train_loss[-1] < history.train_loss[0]
    assert 0 <= history.val_acc[-1] <= 1
    assert history.config["model"]["name"] == "resnet18" and history.config["batch_size"] == 64
    assert history.meta["device"].startswith("cpu") and history.meta["torch"] == str(torch.__version__)
    # The recorded validation numbers are what evaluate() says about the final model.
    result = evaluate(model, test)
    assert result.accuracy == pytest.approx(history.val_acc[-1])
    assert result.loss == pytest.approx(history.val_loss[-1], rel=1e-5)


def test_fit_is_deterministic_on_cpu(tiny):
    runs = []
    for _ in range(2):
        model = small_model(seed=3)
        train, _ = loaders(tiny)
        runs.append(fit(model, train, epochs=2, optimizer=sgd(model), progress=False).step_loss)
    assert runs[0] == runs[1]


def test_step_lr_is_stepped_per_epoch_and_one_cycle_per_step(tiny):
    model = small_model()
    train, _ = loaders(tiny)  # 4 steps per epoch
    optimizer = sgd(model, lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.1)
    history = fit(model, train, epochs=2, optimizer=optimizer, scheduler=scheduler, progress=False)
    assert history.step_lr == pytest.approx([0.1] * 4 + [0.01] * 4)

    model = small_model()
    optimizer = sgd(model, lr=0.1)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=8)
    history = fit(model, train, epochs=2, optimizer=optimizer, scheduler=scheduler,
                  scheduler_interval="step", progress=False)
    assert len(set(history.step_lr)) == 8  # a new rate every step
    assert max(history.step_lr) == pytest.approx(0.1, rel=0.05)
    with pytest.raises(ValueError, match="'epoch' or 'step'"):
        fit(model, train, epochs=1, optimizer=optimizer, scheduler_interval="batch")


class RaisingLoader:
    """The batches of ``batches`` on every pass, except that pass ``on_pass`` raises ``error`` after
    ``after_batches`` of them (Ctrl-C in the middle of an epoch, a disk that goes away)."""

    def __init__(self, batches, error, on_pass=2, after_batches=0):
        self.batches, self.error, self.on_pass, self.after_batches = batches, error, on_pass, after_batches
        self.passes = 0

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        self.passes += 1
        for index, batch in enumerate(self.batches):
            if self.passes == self.on_pass and index == self.after_batches:
                raise self.error
            yield batch


def test_keyboard_interrupt_returns_the_history_so_far(tiny, tmp_path):
    model = small_model()
    train, _ = loaders(tiny)

    path = tmp_path / "run.pt"
    interrupted = RaisingLoader(train, KeyboardInterrupt, after_batches=2)  # one epoch, 2 steps, then Ctrl-C
    history = fit(model, interrupted, epochs=5, optimizer=sgd(model), checkpoint_path=path, progress=False)
    assert history.epochs_done == 1
    assert len(history.step_loss) == len(history.step_lr) == len(train)  # whole epochs only
    assert "the 2 step(s) of the interrupted epoch were dropped" in history.meta["stopped"]
    from course_utils.checkpoint import load_checkpoint

    assert load_checkpoint(path, small_model()).epoch == 1  # the last complete epoch

    # Continue from the checkpoint: the same losses as a run that was never interrupted.
    resumed = small_model(seed=5)
    optimizer = sgd(resumed)
    load_checkpoint(path, resumed, optimizer)
    history = fit(resumed, loaders(tiny)[0], epochs=2, optimizer=optimizer, history=history, progress=False)
    uninterrupted = small_model()
    reference = fit(uninterrupted, loaders(tiny)[0], epochs=2, optimizer=sgd(uninterrupted), progress=False)
    assert history.step_loss == reference.step_loss


def test_nan_loss_stops_with_a_message_naming_the_step(tiny):
    model = small_model()
    train, _ = loaders(tiny)

    def loss_that_explodes(logits, labels):
        loss = torch.nn.functional.cross_entropy(logits, labels)
        return loss * float("inf") if len(history_steps) >= 2 else loss

    history_steps = []
    optimizer = sgd(model)
    optimizer.register_step_post_hook(lambda *args: history_steps.append(1))
    with pytest.raises(TrainingDiverged, match=r"step 3 \(epoch 1\).*Lower the learning rate") as raised:
        fit(model, train, epochs=1, optimizer=optimizer, loss_fn=loss_that_explodes, progress=False)
    assert len(raised.value.history.step_loss) == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad step was not applied
    assert "still finite" in str(raised.value)


def test_losses_read_in_batches_give_the_same_history(tiny, monkeypatch):
    # On a GPU fit reads the step losses every few steps instead of every step (no stall); the
    # History must not depend on it. Read every 3 steps on this CPU and compare with every step.
    def train(read_every):
        monkeypatch.setitem(training.STEPS_PER_LOSS_READ, "cpu", read_every)
        model = small_model()
        train_loader, test = loaders(tiny)  # 4 steps per epoch: the reads do not line up with epochs
        return fit(model, train_loader, epochs=2, optimizer=sgd(model), val_loader=test, progress=False)

    every_step, batched = train(1), train(3)
    assert len(batched.step_loss) == len(batched.step_lr) == 8
    assert batched.step_loss == every_step.step_loss  # the same floats, not just close
    for column in ("step_lr", "train_loss", "train_acc", "val_loss", "val_acc"):
        assert getattr(batched, column) == getattr(every_step, column)


def test_a_nan_found_in_a_later_read_names_its_step_and_says_the_weights_may_be_bad(tiny, monkeypatch):
    monkeypatch.setitem(training.STEPS_PER_LOSS_READ, "cpu", 3)
    model = small_model()
    train, _ = loaders(tiny)
    calls = []

    def loss_that_explodes_at_step_2(logits, labels):
        calls.append(1)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        return loss * float("nan") if len(calls) == 2 else loss

    with pytest.raises(TrainingDiverged, match=r"step 2 \(epoch 1\).*updated 1 time\(s\) from that step on") as raised:
        fit(model, train, epochs=1, optimizer=sgd(model), loss_fn=loss_that_explodes_at_step_2, progress=False)
    assert len(raised.value.history.step_loss) == 3  # read at step 3, before step 3's update


def test_evaluate_confusion_matrix_and_per_class_accuracy(tiny):
    model = small_model()
    _, test = loaders(tiny)
    model.train()
    result = evaluate(model, test)
    assert model.training  # mode restored
    cm = result.confusion_matrix
    assert cm.shape == (10, 10) and int(cm.sum()) == 100
    assert cm.sum(dim=1).tolist() == [10] * 10  # rows are true classes of the balanced subset
    assert result.accuracy == pytest.approx(int(cm.diag().sum()) / 100)
    torch.testing.assert_close(result.per_class_accuracy, cm.diag() / 10.0)


def test_evaluate_uses_eval_mode_batchnorm(tiny):
    # In eval mode BatchNorm uses running statistics, so a batch's result does not depend on the
    # other images in the batch.
    model = small_model()
    images = TensorLoader(tiny.test_images, tiny.test_labels, batch_size=100, augment=False, shuffle=False)
    one_by_one = TensorLoader(tiny.test_images, tiny.test_labels, batch_size=1, augment=False, shuffle=False)
    assert evaluate(model, images).loss == pytest.approx(evaluate(model, one_by_one).loss, rel=1e-4)


def test_bf16_and_channels_last_run_on_cpu(tiny):
    model = small_model()
    train, test = loaders(tiny)
    history = fit(model, train, epochs=1, optimizer=sgd(model), val_loader=test,
                  speed=Speed(amp=True, channels_last=True), progress=False)
    assert history.config["precision"] == "bf16" and history.config["channels_last"]
    assert math.isfinite(history.train_loss[0]) and math.isfinite(history.val_loss[0])



def test_measure_training_speed_times_only_the_steps_after_the_warm_up(tiny, monkeypatch):
    model = small_model()
    images = TensorLoader(tiny.train_images[:32], tiny.train_labels[:32], batch_size=32, augment=False)
    batch, labels = next(iter(images))
    steps_taken = []
    # A clock that reads the number of steps taken so far: whatever it is read for, and however often,
    # the time from the end of the warm-up to the end is the 3 timed steps' "seconds".
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(len(steps_taken)))
    original_sgd = torch.optim.SGD

    def counting_sgd(*args, **kwargs):
        optimizer = original_sgd(*args, **kwargs)
        optimizer.register_step_post_hook(lambda *_: steps_taken.append(1))
        return optimizer

    monkeypatch.setattr(torch.optim, "SGD", counting_sgd)
    speed = measure_training_speed(model, batch, labels, steps=3, warmup=2)
    assert len(steps_taken) == 2 + 3  # it really trains: warm-up steps, then timed ones
    assert speed == 3 * 32 / 3.0  # images of the timed steps over the clock's advance during them


def test_measure_training_speed_with_fp16_scaler_and_channels_last(tiny):
    # The GPU check times every precision and layout; fp16 runs through the gradient scaler.
    model = small_model()
    images = tiny.train_images[:16].float().div(255)
    before = model.fc.weight.detach().clone()
    measure_training_speed(model, images, tiny.train_labels[:16], steps=1, warmup=0,
                           speed=Speed(amp="fp16", channels_last=True))
    assert not torch.equal(before, model.fc.weight)  # the scaled step was taken, not skipped
    assert next(model.parameters()).is_contiguous(memory_format=torch.channels_last) or \
        next(model.parameters()).dim() != 4



def test_fit_accepts_a_loader_without_len(tiny):
    model = small_model()
    train, _ = loaders(tiny)
    batches = (batch for batch in train)  # a generator has no len()
    history = fit(model, batches, epochs=1, optimizer=sgd(model), progress=True)
    assert len(history.step_loss) == len(train)



def test_fp16_autocast_with_a_gradient_scaler_trains_on_cpu(tiny):
    seed_everything(0)
    model = resnet18(width=2)  # a CPU emulates fp16 arithmetic: the narrowest network keeps this to seconds
    train, test = loaders(tiny)
    history = fit(model, train, epochs=2, optimizer=sgd(model), val_loader=test, speed=Speed(amp="fp16"), progress=False)
    assert history.config["precision"] == "fp16"
    assert all(math.isfinite(loss) for loss in history.step_loss)
    assert history.train_loss[-1] < history.train_loss[0]  # the scaled gradients still train it
    other = small_model()
    assert fit(other, train, epochs=1, optimizer=sgd(other), progress=False).config["precision"] == "fp32"


def test_git_commit_can_be_named_for_a_copy_without_its_repository(monkeypatch):
    from course_utils.training import git_commit

    monkeypatch.setenv("COURSE_GIT_COMMIT", "497ad23")
    git_commit.cache_clear()
    try:
        assert git_commit() == "497ad23"
    finally:
        git_commit.cache_clear()


def test_fit_refuses_bad_inputs_before_training(tmp_path, tiny):
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    empty = TensorLoader(tiny.train_images[:0], tiny.train_labels[:0], batch_size=8)
    with pytest.raises(ValueError, match="yields no batches"):
        fit(model, empty, epochs=1, optimizer=optimizer, progress=False)
    loader = TensorLoader(tiny.train_images[:16], tiny.train_labels[:16] + 10, batch_size=8)  # labels 10-19
    with pytest.raises(ValueError, match="class indices 0-9"):
        fit(model, loader, epochs=1, optimizer=optimizer, progress=False)
    good = TensorLoader(tiny.train_images[:16], tiny.train_labels[:16], batch_size=8)
    with pytest.raises(ValueError, match="is a folder"):
        fit(model, good, epochs=1, optimizer=optimizer, progress=False, checkpoint_path=tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # nothing was trained



def test_a_run_stopped_by_its_time_limit_closes_its_bar_at_the_steps_done_and_says_why(tiny, capsys, monkeypatch):
    bars = []
    real_progress_bar = training._progress_bar

    def keep_bar(*args, **kwargs):
        bars.append(real_progress_bar(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr(training, "_progress_bar", keep_bar)
    model = small_model()
    train, _ = loaders(tiny)  # 4 steps per epoch, 12 planned
    history = fit(model, train, epochs=3, optimizer=sgd(model), time_limit=1e-9)
    assert history.meta["stop_reason"] == "time_limit" and len(history.step_loss) == 1
    bar = bars[0]
    assert bar.n == bar.total == 1  # a finished bar of the one step taken, not "8%" of twelve
    assert "Stopped by the time limit of 1e-09 s after 1 steps, during epoch 1 of 3." in capsys.readouterr().out


def test_a_loader_that_runs_out_after_one_pass_is_an_error_not_empty_epochs(tiny):
    model = small_model()
    batches = iter(list(loaders(tiny)[0]))  # an iterator: one pass only, and no len()
    with pytest.raises(ValueError, match="yielded no batches in epoch 2"):
        fit(model, batches, epochs=3, optimizer=sgd(model), progress=False)


def test_a_time_limited_history_cannot_be_continued_as_if_its_last_epoch_were_whole(tiny):
    model = small_model()
    train, _ = loaders(tiny, batch_size=16)
    stopped = fit(model, train, epochs=3, optimizer=sgd(model), progress=False, time_limit=1e-9)
    assert stopped.meta["stop_reason"] == "time_limit" and len(stopped.step_loss) < len(train)
    with pytest.raises(ValueError, match="stopped by its budget in the middle of epoch 1"):
        fit(model, train, epochs=3, optimizer=sgd(model), history=stopped, progress=False)


def test_the_history_of_another_run_is_refused(tiny):
    first = small_model()
    train, _ = loaders(tiny)
    history = fit(first, train, epochs=1, optimizer=sgd(first), progress=False)
    other = cifar_resnet(20)
    with pytest.raises(ValueError, match="record of another run .*model"):
        fit(other, train, epochs=2, optimizer=sgd(other), history=history, progress=False)
    with pytest.raises(ValueError, match="batch_size: 64 in the History, 32 now"):
        fit(first, loaders(tiny, batch_size=32)[0], epochs=2, optimizer=sgd(first), history=history, progress=False)
    fit(first, train, epochs=2, optimizer=sgd(first), history=history, progress=False)  # the same run goes on
    assert history.epochs_done == 2


def test_a_resumed_interrupted_history_that_finishes_is_no_longer_interrupted(tiny):
    model = small_model()
    train, _ = loaders(tiny)
    history = fit(model, train, epochs=1, optimizer=sgd(model), progress=False)
    history.stop("interrupted", "interrupted (Ctrl-C) after 1 complete epoch(s)")
    fit(model, train, epochs=2, optimizer=sgd(model), history=history, progress=False)
    assert history.epochs_done == 2 and not history.interrupted and "stopped" not in history.meta



def linear_model():
    seed_everything(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))


def as_batches(images, labels, batch_size=64):
    return [(images[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(labels), batch_size)]


def normalised(tiny):
    return tiny.train_images.float().div(255), tiny.train_labels


@pytest.mark.parametrize("change, says", [
    (lambda images, labels: (images.mul(255).to(torch.uint8), labels), "torch.uint8 images: a network takes floating-point"),
    (lambda images, labels: (images, labels.int()), "torch.int32 labels of shape (64,): the cross-entropy loss takes class indices as int64"),
    (lambda images, labels: (images, labels.float()), "torch.float32 labels"),
    (lambda images, labels: (images, labels + 10), "class indices 0-9"),
])
def test_data_fit_cannot_train_on_is_refused_at_the_first_batch_by_what_it_is(tiny, change, says):
    images, labels = change(*normalised(tiny))
    for batches in (as_batches(images, labels), torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(images, labels), batch_size=64)):
        model = linear_model()
        before = [parameter.clone() for parameter in model.parameters()]
        with pytest.raises(ValueError, match=re.escape(says)):
            fit(model, batches, epochs=1, optimizer=sgd(model), progress=False)
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # nothing trained
        with pytest.raises(ValueError, match=re.escape(says).replace("training", "test")):
            evaluate(model, batches)


def test_nan_pixels_are_named_as_the_data_not_as_a_learning_rate_to_lower(tiny):
    images, labels = normalised(tiny)
    first = images.clone()
    first[0, 0, 0, 0] = math.nan
    model = linear_model()
    with pytest.raises(ValueError, match="first training batch holds NaN or infinite pixel values"):
        fit(model, as_batches(first, labels), epochs=1, optimizer=sgd(model), progress=False)
    later = images.clone()
    later[100, 1, 2, 3] = math.inf  # in the second batch of 64
    model = linear_model()
    with pytest.raises(TrainingDiverged, match="batch holds NaN or infinite pixel values") as stopped:
        fit(model, as_batches(later, labels), epochs=1, optimizer=sgd(model), progress=False)
    assert "Lower the learning rate" not in str(stopped.value) and len(stopped.value.history.step_loss) == 2


def test_an_optimizer_of_another_model_is_refused(tiny):
    model, other = linear_model(), linear_model()
    with pytest.raises(ValueError, match="the optimizer holds none of this model's parameters"):
        fit(model, as_batches(*normalised(tiny)), epochs=1, optimizer=sgd(other), progress=False)


def test_schedules_stepped_at_the_wrong_interval_are_refused_or_warned_about(tiny):
    batches = as_batches(*normalised(tiny))  # 4 steps per epoch
    model = linear_model()
    optimizer = sgd(model)
    per_step = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=3 * len(batches))
    with pytest.raises(ValueError, match="fit steps it once per epoch"):
        fit(model, batches, epochs=3, optimizer=optimizer, scheduler=per_step, progress=False)
    with pytest.raises(ValueError, match="make it with total_steps=16"):
        fit(model, batches, epochs=4, optimizer=optimizer, scheduler=per_step, scheduler_interval="step",
            progress=False)
    by_epoch = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
    with pytest.warns(UserWarning, match="if they are counted in epochs, pass scheduler_interval='epoch'"):
        fit(model, batches, epochs=2, optimizer=optimizer, scheduler=by_epoch, scheduler_interval="step",
            progress=False)


def test_reduce_lr_on_plateau_is_stepped_with_the_loss_it_watches(tiny):
    model = linear_model()
    optimizer = sgd(model, lr=0.05)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, threshold=10.0)  # never "better"
    history = fit(model, as_batches(*normalised(tiny)), epochs=3, optimizer=optimizer, scheduler=plateau,
                  val_loader=as_batches(tiny.test_images.float().div(255), tiny.test_labels), progress=False)
    assert history.epochs_done == 3 and optimizer.param_groups[0]["lr"] < 0.05  # it did reduce
    with pytest.raises(ValueError, match="ReduceLROnPlateau watches a loss once per epoch"):
        fit(model, as_batches(*normalised(tiny)), epochs=1, optimizer=optimizer, scheduler=plateau,
            scheduler_interval="step", progress=False)


class BrokenInEvalMode(torch.nn.Module):
    """NaN outputs in eval mode only: what runaway BatchNorm averages or an fp16 overflow give."""

    def forward(self, x):
        return x if self.training else x * math.nan


def test_a_nan_test_loss_is_a_warning_in_the_log_and_the_record(tiny, capsys):
    model = torch.nn.Sequential(linear_model(), BrokenInEvalMode())
    history = fit(model, as_batches(*normalised(tiny)), epochs=1, optimizer=sgd(model),
                  val_loader=as_batches(tiny.test_images.float().div(255), tiny.test_labels), progress=False)
    assert math.isfinite(history.train_loss[0]) and math.isnan(history.val_loss[0])
    assert "test accuracy (10.0%) means nothing" in history.meta["warnings"][0]
    assert "Warning: the test loss after epoch 1 is nan" in capsys.readouterr().out + capsys.readouterr().err


def test_an_error_in_the_loop_keeps_the_history_of_the_complete_epochs(tiny):
    batches = as_batches(*normalised(tiny))
    model = linear_model()
    with pytest.raises(OSError, match="the disk went away") as stopped:
        fit(model, RaisingLoader(batches, OSError("the disk went away")), epochs=3, optimizer=sgd(model), progress=False)
    assert stopped.value.history.epochs_done == 1 and len(stopped.value.history.step_loss) == len(batches)


def test_a_schedule_is_stepped_in_one_place_after_each_update_or_each_epoch(tiny):
    from course_utils.devices import PLAIN
    from course_utils.history import History
    from course_utils.models import resnet9
    from course_utils.training import SchedulerSteps, StepLosses, _prepare_step, train_one_epoch

    class Bar:  # the ProgressBar protocol, no more
        def update(self, n=1): pass
        def set_postfix(self, **values): pass
        def write(self, text): pass

    model = resnet9(width=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    loader = TensorLoader(tiny.train_images[:96], tiny.train_labels[:96], batch_size=32)
    step = _prepare_step(model, optimizer, None, torch.device("cpu"), PLAIN, sync_batchnorm=False)
    history = History()
    for interval, lr_after in (("step", 0.5 ** 3), ("epoch", 0.5 ** 3)):  # 3 updates: 3 steps, or none yet
        optimizer.param_groups[0]["lr"] = 1.0
        schedule = SchedulerSteps(torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5), interval)
        totals = train_one_epoch(step, loader, 0, history=history, losses=StepLosses(history, 1, False), bar=Bar(),
                                 schedule=schedule)
        assert optimizer.param_groups[0]["lr"] == (lr_after if interval == "step" else 1.0)
        schedule.after_epoch(totals, None)
        assert optimizer.param_groups[0]["lr"] == (lr_after if interval == "step" else 0.5)
