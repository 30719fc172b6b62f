"""Notebook 05's table: the article's recipe and each fix of it, every step trained for the same time.

    python benchmarks/article_fixes.py --seconds 300 --out data/results/article-fixes-5-minutes
    python benchmarks/article_fixes.py --seconds 900 --only "the article's way" --out data/results/article-way-15-minutes
    python benchmarks/article_fixes.py --report data/results/article-fixes-5-minutes    # train nothing

Every step trains on all 50,000 training images for ``--seconds`` of training on this machine, one after
the other, and is tested on the same class-balanced sample of ``--test-size`` test images (seed 0),
the way the step tests (``course_utils.article_fixes``). One run record per step goes to ``--out``.
Run it alone: the steps are timed, so a busy machine gives every step fewer images.
"""

import argparse
import sys
from pathlib import Path

from course_utils import article_fixes, data
from course_utils.devices import describe_device, pick_device
from course_utils.records import load_runs, slug
from course_utils.history import History


def report(runs: dict[str, History]) -> None:
    first = next(iter(runs.values()))
    print(f"{first.meta['device']}, torch {first.meta['torch']}, {first.meta['date']}, commit {first.meta['git_commit']}; "
          f"{first.config['seconds']:g} s of training per step, seed {first.config['seed']}")
    print("| step | images seen | test accuracy | tested |")
    print("|---|---|---|---|")
    for label, history in runs.items():
        seen = len(history.step_loss) * history.config["batch_size"]
        print(f"| {label} | {seen:,} ({history.epochs_done} epoch(s) begun) | {history.test_acc:.1%} | "
              f"{history.meta['final_test']['how']}, {history.meta['final_test']['images']:,} images |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="training seconds per step")
    parser.add_argument("--only", nargs="*", help="these steps only (labels of article_fixes.FIXES)")
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="folder for one run record per step")
    parser.add_argument("--report", type=Path, metavar="FOLDER", help="print the table of the records in FOLDER")
    args = parser.parse_args()
    if args.report:
        runs = {h.config["fix"]: h for h in load_runs(args.report, "article-fixes").values()}
        if not runs:
            print(f"error: no article-fixes records in {args.report}", file=sys.stderr)
            return 2
        report(runs)
        return 0
    if args.out is None:
        parser.error("--out FOLDER is needed to keep the records (or --report FOLDER to read them)")
    paths = {fix.label: args.out / f"article-fixes__{slug(fix.label)}.json" for fix in article_fixes.FIXES}
    existing = [str(path) for label, path in paths.items() if path.exists() and (not args.only or label in args.only)]
    if existing:
        print(f"error: records exist already ({', '.join(existing)}); choose another --out", file=sys.stderr)
        return 2
    device = pick_device(verbose=False)
    print(f"device: {describe_device(device)}", flush=True)
    cifar = data.load_cifar10().subset(None, args.test_size, seed=0)
    runs = article_fixes.run_fixes(cifar, args.seconds, only=tuple(args.only) if args.only else None, seed=args.seed,
                                   device=device, progress=False)
    args.out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", *sys.argv])
    for label, history in runs.items():
        history.config.update(experiment="article-fixes", run=label, command=command)
        history.save_json(paths[label])
    report(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
