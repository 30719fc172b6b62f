"""The fast recipe's pieces (notebook 08): Cutout, the one-cycle schedule, flip-TTA, bf16 on a CPU,
the time limit, the ablation's runs and the laptop experiment."""

from dataclasses import replace

import pytest
import torch

from course_utils import experiments, runner, schedules
from course_utils.data import TensorLoader, cutout_mask
from course_utils.devices import Speed
from course_utils.experiments import get_settings
from course_utils.models import resnet9, resnet18
from course_utils.training import TimeBudget, evaluate, fit, seed_everything, tta_views


def test_cutout_masks_are_clipped_squares_at_uniform_centres():
    size, n = 16, 20_000
    masks = cutout_mask(n, 32, 32, size, torch.Generator().manual_seed(0))[:, 0]
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # (n, 32): which rows / columns are touched
    # Each mask is exactly the product of one run of rows and one run of columns.
    assert torch.equal(masks, rows[:, :, None] & cols[:, None, :])
    for touched in (rows, cols):
        lengths = touched.sum(dim=1)
        first = touched.float().argmax(dim=1)
        last = 31 - touched.flip(1).float().argmax(dim=1)
        assert torch.equal(lengths, last - first + 1)  # one unbroken run
        # Centre c uniform in 0..31 -> the run covers max(c - 8, 0) .. min(c + 8, 32) - 1.
        expected = torch.tensor([min(c + size // 2, 32) - max(c - size // 2, 0) for c in range(32)])
        assert lengths.float().mean().item() == pytest.approx(expected.float().mean().item(), rel=0.01)
        assert lengths.max() == size and lengths.min() == size // 2
        # Every pixel position is covered about as often as the uniform centre predicts.
        coverage = touched.float().mean(dim=0)
        predicted = torch.tensor([sum(max(c - 8, 0) <= p < min(c + 8, 32) for c in range(32)) / 32 for p in range(32)])
        assert (coverage - predicted).abs().max() < 0.02


def test_loader_cutout_blanks_to_the_mean_colour_and_only_with_augmentation(tiny):
    plain = TensorLoader(tiny.train_images, tiny.train_labels, batch_size=64, seed=3)
    cut = TensorLoader(tiny.train_images, tiny.train_labels, batch_size=64, seed=3, cutout=16)
    (images, labels), (cut_images, cut_labels) = next(iter(plain)), next(iter(cut))
    assert torch.equal(labels, cut_labels)
    changed = (images != cut_images).any(dim=1)  # (64, 32, 32)
    assert torch.all(cut_images.permute(1, 0, 2, 3)[:, changed] == 0)  # blanked = 0 after normalising
    assert 64 * 64 <= changed.sum() <= 64 * 256  # between a quarter square and a whole one per image
    with pytest.raises(ValueError, match="augment=True"):
        TensorLoader(tiny.test_images, tiny.test_labels, batch_size=50, augment=False, cutout=16)
    with pytest.raises(ValueError, match="from 0 \\(off\\) to 32"):
        TensorLoader(tiny.train_images, tiny.train_labels, batch_size=64, cutout=40)


def lr_curve(settings, steps_per_epoch, budget=None, spent=None):
    """The LR of every step; ``spent(step)`` plays fit's part of updating the budget."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=settings.lr)
    scheduler = schedules.make_scheduler(optimizer, replace(settings, schedule="one-cycle"),
                                         steps_per_epoch=steps_per_epoch, budget=budget)
    curve = []
    for step in range(settings.epochs * steps_per_epoch):
        curve.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if budget is not None:
            budget.spent = spent(step)
        scheduler.step()
    return torch.tensor(curve, dtype=torch.float64)


def test_one_cycle_rises_to_the_peak_then_falls_linearly_to_near_zero():
    settings = replace(get_settings("laptop", "quick"), time_budget=None)  # lr 0.1, warm-up 20%
    curve = lr_curve(settings, steps_per_epoch=100)
    total = len(curve)
    warmup = round(0.2 * total)
    peak = int(curve.argmax())
    assert peak == warmup and curve.max().item() == pytest.approx(settings.lr, rel=1e-3)
    assert torch.all(curve[1:peak] > curve[:peak - 1]) and torch.all(curve[peak + 1:] < curve[peak:-1])
    # Each step gets the LR of its middle: neither the first nor the last is 0.
    assert curve[0].item() == pytest.approx(settings.lr * 0.5 / total / 0.2)
    assert curve[-1].item() == pytest.approx(settings.lr * 0.5 / total / 0.8)
    for part in (curve[:warmup], curve[warmup:]):  # both halves are straight lines
        steps = part.diff()
        assert torch.allclose(steps, steps[0].expand_as(steps), rtol=0, atol=1e-12)

    linear = lr_curve(replace(settings, warmup_fraction=0.0, epochs=1), steps_per_epoch=50)
    assert linear[0].item() == pytest.approx(settings.lr * (1 - 0.5 / 50)) and torch.all(linear.diff() < 0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        schedules.make_scheduler(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), settings)


def test_one_cycle_with_a_time_budget_follows_the_clock():
    settings = replace(get_settings("laptop", "quick"), epochs=10)  # 1,000 steps: far more than the clock allows
    budget = TimeBudget(100.0)
    # Pretend each step takes 0.4 s: the budget is spent after 250 steps, a quarter of the step count.
    curve = lr_curve(settings, 100, budget, spent=lambda step: 0.4 * (step + 1))
    assert curve.argmax() == 50 and curve[50].item() == pytest.approx(settings.lr)  # 20% of the *time* spent
    assert curve[0].item() == pytest.approx(settings.lr * 0.5 / 1000 / 0.2)  # no time spent yet: the step count leads
    assert curve[150].item() == pytest.approx(settings.lr * (1 - 0.4 * 150 / 100) / 0.8)
    assert curve[250] == 0 and torch.all(curve[250:] == 0)  # time is up: fit would have stopped here
    with pytest.raises(ValueError, match="positive number of seconds"):
        TimeBudget(0)


def test_an_image_budget_ends_the_run_and_its_one_cycle_whatever_the_clock(monkeypatch, cifar):
    # A budget of work: the run stops after the images a slow hour allows even where the clock would
    # allow more (a fast hour), and its LR has annealed by then.
    monkeypatch.setenv("COURSE_MODE", "smoke")  # 256 training images, batch 64: 4 steps per epoch
    history = runner.run_experiment("laptop", data=cifar, progress=False,
                                    overrides={"epochs": 5, "time_budget": 3600, "image_budget": 700})["resnet9"]
    assert history.meta["stop_reason"] == "image_limit" and "image budget of 700 training images" in history.meta["stopped"]
    assert history.config["image_budget"] == 700 and history.config["time_budget"] == 3600
    assert len(history.step_loss) == 11 and history.epochs_done == 3  # 10 steps of 64 are 640 images, not yet 700
    # The one-cycle follows the images, not the 20 steps of 5 epochs: the peak after 20% of 700 images
    # (step 3, not step 4 of 20), and at the end the LR is down to an eighth of it (it would be near half).
    lrs = torch.tensor(history.step_lr)
    assert int(lrs.argmax()) == 2 and lrs[-1] < 0.15 * lrs.max()
    budget = TimeBudget(None, images=1_000)
    budget.images_done, budget.spent = 250, 1e6
    assert budget.fraction == 0.25 and budget.stop_reason is None  # no time limit: the clock does not end it
    budget.images_done = 1_000
    assert budget.fraction == 1 and budget.stop_reason == "image_limit"
    with pytest.raises(ValueError, match="seconds, images or both"):
        TimeBudget(None)
    with pytest.raises(ValueError, match="image_budget takes a whole number of training images"):
        replace(get_settings("laptop", "quick"), image_budget=0)


def test_flip_tta_equals_averaging_the_two_forward_passes(tiny):
    seed_everything(0)
    model = resnet18(width=4)
    model.train()
    for images, _ in TensorLoader(tiny.train_images, tiny.train_labels, batch_size=128):
        model(images)  # give BatchNorm running statistics that are not the identity
    model.eval()
    test = TensorLoader(tiny.test_images, tiny.test_labels, batch_size=50, augment=False, shuffle=False)
    with torch.no_grad():
        logits = torch.cat([(model(x) + model(torch.flip(x, dims=[3]))) / 2 for x, _ in test])
    loss = torch.nn.functional.cross_entropy(logits, tiny.test_labels).item()
    accuracy = (logits.argmax(dim=1) == tiny.test_labels).float().mean().item()
    result = evaluate(model, test, flip_tta=True)
    assert result.loss == pytest.approx(loss, rel=1e-5) and result.accuracy == pytest.approx(accuracy)
    plain = evaluate(model, test)
    assert plain.loss != pytest.approx(loss, rel=1e-5)  # the flip does change the answer


def test_translate_tta_moves_the_image_one_pixel_each_way_and_averages_all_views(tiny):
    images = tiny.test_images[:4].float()
    views = tta_views(images, flip=True, translate=True)
    assert len(views) == 6 and all(view.shape == images.shape for view in views)
    down_right, up_left = views[1], views[2]
    assert torch.equal(down_right[..., 1:, 1:], images[..., :-1, :-1])  # every pixel one step down and right
    assert torch.equal(up_left[..., :-1, :-1], images[..., 1:, 1:])
    assert torch.equal(down_right[..., 0, 1:], images[..., 1, :-1])  # the new top row mirrors its neighbour
    assert all(torch.equal(views[3 + i], views[i].flip(3)) for i in range(3))
    assert len(tta_views(images, translate=True)) == 3 and len(tta_views(images)) == 1

    seed_everything(0)
    model = resnet9(width=4)
    model.train()
    for batch, _ in TensorLoader(tiny.train_images, tiny.train_labels, batch_size=128):
        model(batch)  # running statistics that are not the identity
    model.eval()
    test = TensorLoader(tiny.test_images, tiny.test_labels, batch_size=50, augment=False, shuffle=False)
    # The six views by hand, as rows and columns picked: moved down (or right) by one, row 0 is row 1
    # again (the reflection); moved up (or left), the last row is row 30 again.
    down, up = [1, *range(31)], [*range(1, 32), 30]
    with torch.no_grad():
        logits = torch.cat([sum(model(view) + model(view.flip(3)) for view in
                                (x, x[..., down, :][..., down], x[..., up, :][..., up])) / 6 for x, _ in test])
    loss = torch.nn.functional.cross_entropy(logits, tiny.test_labels).item()
    result = evaluate(model, test, flip_tta=True, translate_tta=True)
    assert result.loss == pytest.approx(loss, rel=1e-5)
    assert result.accuracy == pytest.approx((logits.argmax(dim=1) == tiny.test_labels).float().mean().item())
    assert evaluate(model, test, flip_tta=True).loss != pytest.approx(loss, rel=1e-5)


def test_bf16_channels_last_training_runs_on_a_cpu_and_the_time_limit_stops_it(tiny):
    seed_everything(0)
    model = resnet18(width=4)
    train = TensorLoader(tiny.train_images, tiny.train_labels, batch_size=32, cutout=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    history = fit(model, train, epochs=50, optimizer=optimizer, speed=Speed(amp=True, channels_last=True), progress=False,
                  loss_fn=torch.nn.CrossEntropyLoss(label_smoothing=0.1), time_limit=1.0)
    assert history.config["precision"] == "bf16" and history.config["channels_last"] and history.config["nesterov"]
    assert history.config["cutout"] == 8
    assert history.epochs_done < 50 and "time limit of 1 s" in history.meta["stopped"]
    assert all(torch.isfinite(torch.tensor(history.step_loss)))
    assert 1.0 <= history.meta["wall_seconds"] < 10


def test_ablation_switches_one_trick_on_per_run():
    specs = experiments.run_specs("fast-ablation", get_settings("fast-ablation", "quick"))
    labels = [label for label, _ in experiments.ABLATION]
    assert [spec.label for spec in specs] == labels[:-1]  # no torch.compile on a CPU budget
    settings = get_settings("fast-ablation", "quick")
    assert specs[0].changes == () and schedules.schedule_of(specs[0].settings(settings)) == "constant"
    for before, after in zip(specs, specs[1:]):
        # Each run keeps every earlier change and adds at least one.
        assert set(before.changes) < set(after.changes)
    assert schedules.schedule_of(specs[-1].settings(settings)) == "one-cycle" and dict(specs[-1].changes)["cutout"] == 16
    full = experiments.run_specs("fast-ablation", get_settings("fast-ablation", "full"))
    assert full[-1].label == "+ torch.compile"


def test_laptop_run_records_the_recipe_and_rejects_unknown_overrides(tmp_path, monkeypatch, cifar):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    runs = runner.run_experiment("laptop", out_dir=tmp_path, data=cifar, progress=False,
                                      overrides={"epochs": 2})
    history = runs["resnet9"]
    config = history.config
    assert config["nesterov"] and config["flip_tta"] and config["label_smoothing"] == 0.1
    assert config["schedule"] == "one-cycle" and config["overrides"] == {"epochs": 2} and history.epochs_done == 2
    assert history.step_lr[-1] < 0.2 * max(history.step_lr)  # decayed towards zero
    assert (tmp_path / "laptop__resnet9.json").exists()
    with pytest.raises(ValueError, match="unknown setting"):
        runner.run_experiment("laptop", data=cifar, progress=False, overrides={"epoch": 2})


def test_laptop_run_tests_a_fixed_sample_each_epoch_and_the_whole_test_split_at_the_end(monkeypatch, cifar):
    monkeypatch.setenv("COURSE_MODE", "smoke")  # test_size 100
    # A model name given as a string (as --set models=resnet18 gives it) is one model, not letters.
    runs = runner.run_experiment("laptop", data=cifar, progress=False,
                                      overrides={"epochs": 2, "val_size": 40, "models": "resnet18"})
    history = runs["resnet18"]
    assert history.config["model"]["name"] == "resnet18"
    assert history.config["val_images"] == 40 and len(history.val_acc) == 2
    assert all(abs(acc * 40 - round(acc * 40)) < 1e-9 for acc in history.val_acc)  # out of 40 images
    final = history.meta["final_test"]
    assert final["images"] == 100 and final["flip_tta"]
    assert history.test_acc == final["accuracy"] and abs(final["accuracy"] * 100 - round(final["accuracy"] * 100)) < 1e-9
    assert final["translate_tta"]  # the recipe's final test adds the one-pixel shifts
    without = runner.run_experiment("laptop", data=cifar, progress=False,
                                    overrides={"val_size": None, "translate_tta": False})["resnet9"]
    assert "final_test" not in without.meta and without.test_acc == without.val_acc[-1]
    # More views for the final weights: a final test even when every epoch tested all images.
    shifted = runner.run_experiment("laptop", data=cifar, progress=False, overrides={"val_size": None})["resnet9"]
    final = shifted.meta["final_test"]
    assert final["translate_tta"] and final["flip_tta"] and shifted.test_acc == final["accuracy"]
    assert final["images"] == shifted.config["val_images"] == 100
