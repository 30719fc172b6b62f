"""One experiment over several seeds: does its lesson show in every run, and how large is the noise?

    python benchmarks/quick_seeds.py degradation --seeds 5 --out data/runs/seeds/degradation
    python benchmarks/quick_seeds.py lr-decay --seeds 5 --set epochs=20 train_size=1280
    python benchmarks/quick_seeds.py degradation --report data/runs/seeds/degradation   # train nothing

Each seed is `python -m course_utils run EXPERIMENT --mode quick --seed N` (the same
`run_experiment`), written to OUT/seed-N/. ``--set`` tries other settings without editing
`experiments.EXPERIMENTS` (they are stored in each record's ``config["overrides"]``). The report prints, per
seed, each run's final training loss (mean of the last 10 steps), training and test error and
seconds, then the mean and standard deviation over the seeds, and the experiment's verdict for each
seed (`course_utils.verdicts`), which is what notebooks print for a learner's single run.
"""

import argparse
import statistics
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds to train (0, 1, ...)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--mode", default="quick")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="settings to change, as for `python -m course_utils run`")
    parser.add_argument("--out", help="one sub-folder seed-N per seed (default: data/runs/seeds/EXPERIMENT)")
    parser.add_argument("--report", metavar="FOLDER", help="only summarise the records already in FOLDER")
    args = parser.parse_args()

    from course_utils import verdicts
    from course_utils.cli import parse_overrides
    from course_utils.devices import describe_device, pick_device
    from course_utils.records import load_seed_runs
    from course_utils.runner import run_experiment

    folder = Path(args.report or args.out or f"data/runs/seeds/{args.experiment}")
    if not args.report:
        print(f"device: {describe_device(pick_device(verbose=False))}", flush=True)
        overrides = parse_overrides(args.overrides)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            command = " ".join(["python benchmarks/quick_seeds.py", *sys.argv[1:], f"(seed {seed})"])
            try:
                run_experiment(args.experiment, out_dir=folder / f"seed-{seed}", seed=seed, progress=False,
                               command=command, overrides=overrides, mode=args.mode)
            except FileExistsError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2

    seeds = load_seed_runs(folder, args.experiment)
    complete = max((len(runs) for runs in seeds.values()), default=0)
    seeds = {seed: runs for seed, runs in sorted(seeds.items()) if runs and len(runs) == complete}  # finished seeds
    if not seeds:
        print(f"error: no {args.experiment} run records in {folder}/seed-*/", file=sys.stderr)
        return 2
    first = next(iter(next(iter(seeds.values())).values()))
    print(f"\n{args.experiment}, {len(seeds)} seeds, {first.meta['mode']} mode, on {first.meta['device']}, "
          f"torch {first.meta['torch']}, overrides {first.config.get('overrides') or 'none'}")
    print("| seed | run | final train loss | train error | test error | seconds |\n|---|---|---|---|---|---|")
    for seed, runs in seeds.items():
        for label, history in runs.items():
            print(f"| {seed} | {label} | {history.final_loss():.3f} | {1 - history.train_acc[-1]:.1%} | "
                  f"{1 - history.test_acc:.1%} | {history.meta['wall_seconds']:.0f} |")
    print("\nmean (standard deviation) over the seeds:")
    for label in first_runs_labels(seeds):
        histories = [runs[label] for runs in seeds.values() if label in runs]
        print(f"  {label}: final train loss {spread([h.final_loss() for h in histories], '.3f')}, "
              f"train error {spread([100 * (1 - h.train_acc[-1]) for h in histories], '.1f')} %, "
              f"test error {spread([100 * (1 - h.test_acc) for h in histories], '.1f')} %")
    judge = verdicts.VERDICTS.get(args.experiment)
    if judge is not None:
        print("\nverdict of each seed:")
        shown = 0
        for seed, runs in seeds.items():
            verdict = judge(runs)
            shown += verdict.shown
            print(f"  seed {seed}: {'SHOWN' if verdict.shown else 'NOT SHOWN'}: {verdict.text}")
        print(f"the lesson shows in {shown} of {len(seeds)} seeds")

    labels = first_runs_labels(seeds)
    print("\nfor benchmarks/README.md: final train loss / train error / test error of each run\n")
    print("| seed | " + " | ".join(labels) + (" | lesson shown |" if judge else " |"))
    print("|---" * (len(labels) + 1 + bool(judge)) + "|")
    for seed, runs in seeds.items():
        cells = [f"{runs[label].final_loss():.3f} / {1 - runs[label].train_acc[-1]:.1%} / "
                 f"{1 - runs[label].test_acc:.1%}" for label in labels]
        shown_cell = [("yes" if judge(runs).shown else "**no**")] if judge else []
        print("| " + " | ".join([str(seed), *cells, *shown_cell]) + " |")
    return 0


def first_runs_labels(seeds: dict) -> list[str]:
    return list(next(iter(seeds.values())))


def spread(values: list[float], spec: str) -> str:
    deviation = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):{spec}} ({deviation:{spec}})"


if __name__ == "__main__":
    sys.exit(main())
