"""The command line: ``python -m course_utils list`` and ``python -m course_utils run EXPERIMENT``.

Every experiment of ``experiments.EXPERIMENTS`` (so every one a notebook runs) can be listed and run
here. Under ``torchrun`` the command joins the process group before training and leaves it after.
"""

from __future__ import annotations

import argparse
import ast
import math
import sys
from pathlib import Path

from course_utils.data import data_dir
from course_utils.distributed import (is_distributed, is_main_process, launched_by_torchrun, start_process_group,
                                      stop_process_group)
from course_utils.estimates import time_budget_minutes
from course_utils.experiments import EXPERIMENTS, settings_lines
from course_utils.modes import MODES, current_mode
from course_utils.parallel import Job, run_jobs, summary_line
from course_utils.records import load_runs, record_paths
from course_utils.runner import planned_runs, run_experiment
from course_utils.training import TrainingDiverged


def parse_overrides(pairs: list[str]) -> dict:
    """``["epochs=4", "train_size=None", "schedule=one-cycle"]`` -> ``{"epochs": 4, "train_size": None,
    "schedule": "one-cycle"}``: values are read as Python literals, anything else as a string."""
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"settings are given as KEY=VALUE (e.g. epochs=4), got {pair!r}")
        if key in overrides:
            raise ValueError(f"{key} is set twice ({key}={overrides[key]!r} and {pair!r}); give each setting once")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    return overrides


def _argument(convert, accepted, kind: str, refusal: str):
    """An argparse type: ``convert`` the text, then refuse it with ``refusal`` unless ``accepted``."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not accepted(value):
            raise argparse.ArgumentTypeError(refusal.format(value))
        return value
    return parse


# --seed: a whole number every random generator accepts (NumPy's: below 2**32).
seed_number = _argument(int, lambda seed: 0 <= seed < 2**32, "a whole number",
                        f"{{}} is outside 0 to 2**32 - 1 = {2**32 - 1}")
# --jobs: at least one process.
job_count = _argument(int, lambda count: count >= 1, "a whole number", "{} is not a number of processes, 1 or more")
# --budget: minutes above 0 (inf and nan are refused too).
minutes = _argument(float, lambda value: 0 < value < math.inf, "a number of minutes",
                    "{} is not a number of minutes above 0")


def list_experiments() -> None:
    """Print every experiment with its sizes in each mode, and for full and paper mode the
    estimated time on a T4 (the assumption is in ``course_utils.estimates``)."""
    print("Times on a T4 are estimates: forward MACs x 3 at 4 TMAC/s plus 0.5 ms per weight layer per step "
          "(see course_utils/estimates.py), without compilation.")
    for name, experiment in EXPERIMENTS.items():
        print(f"{name}: {experiment.description}")
        modes = [mode for mode in MODES if mode != "paper" or mode in experiment.settings]  # the others run full
        for mode, line in zip(modes, settings_lines(name, modes)):
            print(f"  {mode:>5}: {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils",
                                     description="Run the ResNet course's experiments without Jupyter.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the experiments and their sizes in each mode")
    run = commands.add_parser("run", help="run one experiment and write one run record per model")
    run.add_argument("experiment", choices=list(EXPERIMENTS))
    run.add_argument("--mode", choices=MODES, default=None,
                     help="run mode (default: $COURSE_MODE, else full with CUDA and quick without)")
    run.add_argument("--out", default=None,
                     help="folder for the run records (default: DATA/runs/EXPERIMENT-MODE, DATA being "
                          "$COURSE_DATA_DIR or the repository's data/)")
    run.add_argument("--seed", type=seed_number, default=0)
    # action="extend": a second --only or --set adds to the first instead of replacing it unannounced.
    run.add_argument("--only", nargs="+", action="extend", metavar="LABEL",
                     help="run only these runs (labels as in `list`)")
    run.add_argument("--overwrite", action="store_true", help="replace existing run records")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (for log files)")
    run.add_argument("--save-models", action="store_true",
                     help="also write each trained model as a checkpoint beside its record")
    run.add_argument("--budget", type=minutes, default=None, metavar="MINUTES",
                     help="choose the epochs so that all runs fit MINUTES by the printed estimate "
                          "(default: $COURSE_TIME_BUDGET, else the mode's epochs)")
    run.add_argument("--jobs", type=job_count, default=1, metavar="N",
                     help="train N runs at once, each in its own process writing its own record (the same "
                          "records as one after another; on a GPU it hides the per-step launch cost)")
    run.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", dest="overrides",
                     help="change settings of the mode for this run, e.g. --set epochs=4 train_size=None "
                          "(stored in each record's config['overrides'])")
    args = parser.parse_args(argv)

    if args.command == "list":
        list_experiments()
        return 0
    if launched_by_torchrun() and not is_distributed():
        start_process_group()
    code = _run_command(args, argv)  # on an exception, torchrun stops the other processes
    if code != 130:  # after Ctrl-C the other processes may be anywhere: no barrier to wait at
        stop_process_group()
    return code


def _run_command(args: argparse.Namespace, argv: list[str] | None) -> int:
    command = "python -m course_utils " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        mode = args.mode or current_mode()  # COURSE_MODE=bogus: a one-line error, not a traceback
        # Default: beside the data, as load_cifar10 finds it ($COURSE_DATA_DIR, else the repository's data/).
        out_dir = Path(args.out).expanduser() if args.out else data_dir() / "runs" / f"{args.experiment}-{mode}"
        overrides = parse_overrides(args.overrides)
        if args.jobs > 1:
            return _run_in_parallel(args, mode, out_dir, overrides)
        runs = run_experiment(args.experiment, out_dir=out_dir, seed=args.seed, only=args.only,
                              overwrite=args.overwrite, progress=not args.no_progress, command=command,
                              overrides=overrides, save_models=args.save_models,
                              budget_minutes=args.budget, mode=mode)
    except (FileExistsError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130  # the shell's code for Ctrl-C; run_experiment said what was kept
    except TrainingDiverged as error:  # a fact about the run, not a bug to show a traceback for
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not is_main_process():
        return 0
    _print_results(runs, out_dir)
    return 0


def _print_results(runs: dict, out_dir: Path) -> None:
    for label, history in runs.items():
        final = history.meta.get("final_test")
        tested = f" (all {final['images']:,} test images)" if final else ""
        print(f"{label}: final train error {1 - history.train_acc[-1]:.2%}, "
              f"test error {1 - history.test_acc:.2%}{tested}, {history.meta['wall_seconds']:.0f} s")
    print(f"run records written to {out_dir}")


def _run_in_parallel(args: argparse.Namespace, mode: str, out_dir: Path, overrides: dict) -> int:
    """--jobs N: each run of the experiment in its own ``run --only LABEL`` process, N at a time."""
    if args.budget is not None or time_budget_minutes() is not None:
        raise ValueError("--jobs cannot share a time budget between processes (each would measure only its own "
                         "run); choose the epochs with --set epochs=N, or run without --jobs")
    if is_distributed() or launched_by_torchrun():
        raise ValueError("--jobs starts processes of its own; under torchrun, run without it")
    specs = planned_runs(args.experiment, mode, overrides, args.only)  # every refusal before any process starts
    record_paths(args.experiment, [spec.label for spec in specs], out_dir, args.save_models, args.overwrite)
    jobs = [Job(args.experiment, spec.label, out_dir, mode, seed=args.seed, settings=tuple(args.overrides),
                overwrite=args.overwrite, save_models=args.save_models) for spec in specs]
    print(f"{args.experiment} in {mode} mode: {len(jobs)} run(s), {min(args.jobs, len(jobs))} at a time, "
          f"each in its own process; their output is prefixed with the run's label")
    try:
        results = run_jobs(jobs, at_once=args.jobs)
    except KeyboardInterrupt:
        print(f"Interrupted: the runs still training were stopped; finished runs' records are kept in {out_dir}.")
        return 130
    for result in results:
        print(summary_line(result))
    if any(result.status != "done" for result in results):
        return 1
    runs = load_runs(out_dir, args.experiment)
    _print_results({spec.label: runs[spec.label] for spec in specs}, out_dir)
    return 0
