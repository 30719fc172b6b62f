"""The laptop recipe, repeated over seeds: test accuracy and training minutes, mean and spread.

    python benchmarks/laptop_recipe.py --runs 3 --out data/results/laptop
    python benchmarks/laptop_recipe.py --report data/results/laptop   # summarise, train nothing

Each run is `python -m course_utils run laptop --mode quick --seed N`: ResNet18 at width 16 on all
50,000 training images for a time budget of 14 minutes of training (the one-cycle learning rate
follows the clock), tested on all 10,000 test images (with test-time flip). The target is at
least 80% test accuracy, mean of the runs, in at most 15 minutes of training on 2 CPU cores.
Training time is the sum of the epochs' training loops; the per-epoch test passes that draw the
accuracy-against-time curve are reported separately. Run it with nothing else on the machine.
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

TARGET_ACCURACY = 0.80
TARGET_MINUTES = 15.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="number of seeds to train (0, 1, ...)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", default="data/runs/laptop", help="one sub-folder seed-N per run")
    parser.add_argument("--mode", default="quick", help="run mode of the laptop experiment")
    parser.add_argument("--report", metavar="FOLDER", help="only summarise the records already in FOLDER")
    args = parser.parse_args()

    os.environ["COURSE_MODE"] = args.mode  # before course_utils reads it
    from course_utils.experiments import load_seed_runs, run_experiment
    from course_utils.devices import describe_device, pick_device

    if args.report:
        runs = list(load_seed_runs(args.report, "laptop").values())
        if not runs:
            print(f"error: no laptop run records in {args.report}/seed-*/", file=sys.stderr)
            return 2
    else:
        print(f"device: {describe_device(pick_device(verbose=False))}")
        runs = []
        for seed in range(args.first_seed, args.first_seed + args.runs):
            command = f"python benchmarks/laptop_recipe.py --runs {args.runs} --first-seed {args.first_seed} " \
                      f"--out {args.out} --mode {args.mode} (seed {seed})"
            try:
                history = run_experiment("laptop", out_dir=Path(args.out) / f"seed-{seed}", seed=seed,
                                         progress=False, command=command)["resnet18"]
            except FileExistsError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            runs.append(history)
            print(f"seed {seed}: {summary(history)}", flush=True)

    print(f"\n{len(runs)} run(s) on {runs[0].meta['device']}, torch {runs[0].meta['torch']}:")
    for history in runs:
        print(f"  seed {history.config['seed']}: {summary(history)}")
    accuracies = [history.val_acc[-1] for history in runs]
    minutes = [history.meta["wall_seconds"] / 60 for history in runs]
    print(f"test accuracy: mean {statistics.mean(accuracies):.2%}, spread {min(accuracies):.2%} to "
          f"{max(accuracies):.2%}" + (f", std {statistics.stdev(accuracies):.2%}" if len(runs) > 1 else ""))
    print(f"training minutes: mean {statistics.mean(minutes):.2f}, spread {min(minutes):.2f} to {max(minutes):.2f}")
    reached = statistics.mean(accuracies) >= TARGET_ACCURACY and max(minutes) <= TARGET_MINUTES
    print(f"target (>= {TARGET_ACCURACY:.0%} mean test accuracy, <= {TARGET_MINUTES:.0f} training minutes "
          f"per run): {'reached' if reached else 'NOT reached'}")
    return 0


def summary(history) -> str:
    return (f"test accuracy {history.val_acc[-1]:.2%} after {history.meta['wall_seconds'] / 60:.2f} minutes of "
            f"training ({history.epochs_done} epochs, {sum(history.images_per_s) / len(history.images_per_s):.0f} "
            f"images/s); {history.meta['fit_seconds'] / 60:.2f} minutes with the per-epoch tests")


if __name__ == "__main__":
    sys.exit(main())
