"""ResNet18 trained with the course's fast recipe: seconds of training and test accuracy per run,
compared with the course's default recipe and with the article's way for the same seconds.

    python benchmarks/fast_resnet18.py --runs 5 --out data/results/fast    # full mode: a CUDA GPU
    python benchmarks/fast_resnet18.py --mode smoke --runs 2               # tiny, any CPU

The recipe is the experiment "fast" of course_utils.experiments (ResNet18, CIFAR stem, unchanged):
one-cycle LR, Nesterov, test-time flip, channels_last, and in full mode Cutout 12, bf16 autocast, the
step compiled into CUDA graphs and batch 500 (label smoothing in the smaller modes). Each run uses
another seed; the script prints the mean and spread, and in full mode the training seconds (without
the first epoch's start-up, ``History.startup_seconds``) until the test accuracy first reached 94%.
Then, once, the same model with the course's default recipe (constant LR, fp32, NCHW, no
tricks), and the same model trained the article's way (PIL pipeline at 64x64, batch 8, SGD lr
0.001, momentum 0.9) for as many seconds as the fast recipe's mean, both tested on the same images.
"""

import argparse
import statistics
import sys
from pathlib import Path


TARGET = 0.94


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="number of seeds (0, 1, ...)")
    parser.add_argument("--mode", default=None, help="run mode (default: full with CUDA, else quick)")
    parser.add_argument("--out", default=None, help="write run records to OUT/seed-N/")
    parser.add_argument("--no-baselines", action="store_true", help="skip the default-recipe and article runs")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="change settings of the recipe, as `python -m course_utils run --set` does")
    args = parser.parse_args()
    from course_utils.article import article_loader, article_optimizer
    from course_utils.cli import parse_overrides
    from course_utils.data import load_cifar10
    from course_utils.devices import PLAIN, describe_device, pick_device
    from course_utils.experiments import get_settings
    from course_utils.models import build
    from course_utils.runner import apply_overrides, run_experiment
    from course_utils.modes import FAST_OPTIONS, Settings, current_mode, format_settings
    from course_utils.training import evaluate, fit, seed_everything

    device = pick_device(verbose=False)
    mode = args.mode or current_mode()
    overrides = parse_overrides(args.overrides)
    settings = apply_overrides(get_settings("fast", mode), overrides)
    print(f"device: {describe_device(device)}; mode {mode}: {format_settings(settings)}")
    data = load_cifar10().subset(settings.train_size, settings.test_size, seed=0)

    runs = []
    for seed in range(args.runs):
        out = Path(args.out) / f"seed-{seed}" if args.out else None
        try:
            history = run_experiment("fast", data=data, seed=seed, device=device, out_dir=out, progress=False,
                                     mode=mode, overrides=overrides,
                                     command="python benchmarks/fast_resnet18.py " + " ".join(sys.argv[1:])
                                     + f" (seed {seed})")
        except FileExistsError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        runs.append(history["resnet18"])
        print(f"seed {seed}: {describe_run(runs[-1])}", flush=True)

    # Compilation and CUDA-graph recording are reported apart (History.startup_seconds): they are paid once.
    seconds = [history.meta["wall_seconds"] - history.startup_seconds() for history in runs]
    accuracies = [history.test_acc for history in runs]
    print(f"\nfast recipe, {len(runs)} run(s): test accuracy mean {statistics.mean(accuracies):.2%} "
          f"(min {min(accuracies):.2%}, max {max(accuracies):.2%}); training seconds without start-up mean "
          f"{statistics.mean(seconds):.1f} (min {min(seconds):.1f}, max {max(seconds):.1f})")
    reached = [history.seconds_to_accuracy(TARGET, without_startup=True) for history in runs]
    if all(time is not None for time in reached):
        print(f"time to {TARGET:.0%}: mean {statistics.mean(reached):.1f} s (min {min(reached):.1f}, "
              f"max {max(reached):.1f}) over {len(reached)} seeds")
    else:
        print(f"{sum(time is None for time in reached)} of {len(reached)} run(s) did not reach {TARGET:.0%}")
    if args.no_baselines:
        return 0

    # The course's default recipe: every fast option back at its default, same sizes and epochs.
    plain = {name: Settings.__dataclass_fields__[name].default for name in FAST_OPTIONS}
    default = run_experiment("fast", data=data, device=device, progress=False, overrides={**overrides, **plain},
                             mode=mode)["resnet18"]
    print(f"course default recipe (no fast options): {describe_run(default)}")
    fast_speed = statistics.mean(statistics.mean(history.images_per_s) for history in runs)
    print(f"training images/s: fast recipe {fast_speed:,.0f} vs default {statistics.mean(default.images_per_s):,.0f}"
          f" ({fast_speed / statistics.mean(default.images_per_s):.2f}x)")

    # The article's way, for the same number of seconds.
    budget = statistics.mean(seconds)
    seed_everything(0)
    model = build("resnet18", settings.width)
    train = article_loader(data.train_images, data.train_labels, batch_size=8, num_workers=2)
    test = article_loader(data.test_images, data.test_labels, batch_size=100, num_workers=2, shuffle=False,
                          train=False)
    article = fit(model, train, epochs=1_000_000, optimizer=article_optimizer(model), device=device, speed=PLAIN,
                  time_limit=budget, progress=False)
    result = evaluate(model, test, device=device, speed=PLAIN)
    images = 8 * len(article.step_loss)
    print(f"article's way for {budget:.1f} s: test accuracy {result.accuracy:.2%} after {images:,} images "
          f"({images / article.meta['wall_seconds']:,.0f} images/s, {len(article.step_loss):,} steps of batch 8)")
    return 0


def describe_run(history) -> str:
    reached = history.seconds_to_accuracy(TARGET, without_startup=True)
    return (f"test accuracy {history.test_acc:.2%} after {history.meta['wall_seconds']:.1f} s of training, "
            f"{history.startup_seconds():.1f} s of it start-up (compiling) "
            f"({history.epochs_done} epochs, {statistics.mean(history.images_per_s):,.0f} images/s)"
            + (f", {TARGET:.0%} first reached after {reached:.1f} s without start-up" if reached is not None else ""))


if __name__ == "__main__":
    sys.exit(main())
