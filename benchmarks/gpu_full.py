"""The GPU path at its real size, as one prepared command: at most --budget seconds (default 9.5 minutes)
on one CUDA GPU.

    python benchmarks/gpu_full.py --commit "$(git rev-parse HEAD)" --out data/results/gpu-full
    python benchmarks/gpu_full.py --dry-run       # any CPU: every part at smoke size (one run of each
                                                  # experiment, 2 seeds), in a temporary folder

In this order, each part stopping at its share of the budget (what did not fit is listed as such):

1. the fast recipe (experiment ``fast``, full mode) for --seeds seeds, one after another and alone on
   the GPU, so that each run's training seconds are its own: ``OUT/fast/seed-N/``;
2. the full-mode records of notebooks 01, 05 and 07 (``degradation``, ``lr-decay``, ``depth``), each
   training step compiled into CUDA graphs (``compile=reduce-overhead``), and the fast recipe's ablation
   (``fast-ablation``, notebook 08): --jobs runs at a time on the one GPU, each in its own process
   (``course_utils.parallel``), longest first: ``OUT/*.json``;
3. training images/s of ResNet-20, ResNet-56 and ResNet18 (width 64) at batch 128 in bf16 and
   channels-last, eager and with CUDA graphs (before and after part 2's change): ``OUT/speed.json``.

A run that fails with CUDA graphs is retried once with plain ``torch.compile`` while time is left.
``OUT/summary.json`` says what each run did and how long it took, with the fast recipe's mean and
spread over seeds; ``OUT/logs/`` holds every run's output. Provenance: the copy of the code on a GPU
machine has no trustworthy ``.git``, so pass the real commit with ``--commit``; every record stores it.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

TARGET = 0.94
SPEED_MODELS = ("resnet-20", "resnet-56", "resnet18")
SPEED_BATCH = 128
CUDA_GRAPHS = "compile=reduce-overhead"
FALLBACK = "compile=true"  # torch.compile without CUDA graphs, if a run fails with them
FULL_EXPERIMENTS = ("degradation", "lr-decay", "depth")  # notebooks 01, 05 and 07
# Shares of the budget: part 1 may run until 45% of it, part 2 until all but SPEED_SECONDS.
FAST_SHARE, SPEED_SECONDS = 0.45, 75.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None,
                        help="folder for the records (default: data/results/gpu-full; --dry-run: a temporary folder)")
    parser.add_argument("--commit", default=None, help="the commit the code is from (required on a GPU)")
    parser.add_argument("--budget", type=float, default=570, help="seconds the whole command may take")
    parser.add_argument("--seeds", type=int, default=None, help="seeds of the fast recipe (part 1; default 5, "
                        "in a dry run 2)")
    parser.add_argument("--jobs", type=int, default=8, help="runs at once in part 2")
    parser.add_argument("--dry-run", action="store_true", help="smoke-mode sizes on any device: checks the script")
    args = parser.parse_args(argv)
    args.seeds = args.seeds if args.seeds is not None else 2 if args.dry_run else 5
    begun = time.monotonic()

    import torch

    from course_utils.devices import Speed, describe_device, pick_device
    from course_utils.estimates import t4_step_seconds
    from course_utils.experiments import get_settings, run_specs
    from course_utils.models import build
    from course_utils.records import load_runs, load_seed_runs, one_run_each
    from course_utils.parallel import Job, run_jobs, summary_line
    from course_utils.training import git_commit, measure_training_speed

    mode = "smoke" if args.dry_run else "full"
    device = pick_device(verbose=False)
    if device.type != "cuda" and not args.dry_run:
        return refuse("no CUDA GPU here; this command is for a GPU (--dry-run tries every part on a CPU)")
    if not args.dry_run and not args.commit:
        return refuse("pass the commit the code is from: --commit \"$(git rev-parse HEAD)\" (a GPU machine's "
                      "copy of the repository may carry no .git, or a stale one)")
    if args.seeds < 1 or args.jobs < 1 or not 0 < args.budget < math.inf:
        return refuse("--seeds and --jobs take whole numbers from 1, --budget a number of seconds above 0")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gpu-full-dry-run-")) if args.dry_run \
        else Path("data/results/gpu-full")
    if out.exists() and any(out.iterdir()):
        return refuse(f"{out} is not empty; choose another --out (records are never written over)")
    commit = args.commit or git_commit()
    deadline = begun + args.budget
    summary = {"meta": {"device": describe_device(device), "torch": torch.__version__, "git_commit": commit,
                        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "mode": mode, "budget_seconds": args.budget,
                        "jobs": args.jobs, "dry_run": args.dry_run,
                        "command": "python benchmarks/gpu_full.py " + " ".join(argv if argv is not None else sys.argv[1:])},
               "runs": [], "fast": None, "speed": []}
    print(f"device: {summary['meta']['device']}; torch {torch.__version__}; {mode} mode; commit {commit}; "
          f"budget {args.budget:g} s; records to {out}", flush=True)
    env = {"COURSE_GIT_COMMIT": commit} if commit else {}
    # On a CPU (the dry run) the runs stay eager: compiling takes a minute there, and no CUDA graphs exist.
    graphs = (CUDA_GRAPHS,) if device.type == "cuda" else ()

    def run_part(part: str, jobs: list[Job], at_once: int, until: float) -> None:
        results = run_jobs(jobs, at_once=at_once, deadline=until, env=env, echo=False, log_dir=out / "logs")
        # Once, without CUDA graphs: a run that failed with them (the fast recipe has them by default).
        retry = [replace(result.job, settings=(*[setting for setting in result.job.settings if setting != CUDA_GRAPHS],
                                               FALLBACK), name=f"{result.job.name}-{FALLBACK}")
                 for result in results if result.status == "failed" and device.type == "cuda"
                 and (CUDA_GRAPHS in result.job.settings or (result.job.script and not fast_records()))]
        if retry and time.monotonic() < until:
            results += run_jobs(retry, at_once=at_once, deadline=until, env=env, echo=False, log_dir=out / "logs")
        for result in results:
            print(f"  {summary_line(result)}", flush=True)
            summary["runs"].append({"part": part, "name": result.job.name, "experiment": result.job.experiment,
                                    "run": result.job.label, "settings": result.job.settings,
                                    "status": result.status, "returncode": result.returncode,
                                    "seconds": round(result.seconds, 1), "last_line": (result.last_lines or [""])[-1]})
        save(out / "summary.json", summary)

    def fast_records() -> dict:
        return one_run_each(load_seed_runs(out / "fast", "fast", missing_ok=True))  # part 1 may have written nothing

    # One process for all seeds: the recipe compiles once (later seeds reuse the compiled code).
    print(f"\n1. the fast recipe, {args.seeds} seed(s), one after another", flush=True)
    script = (str(Path(__file__).with_name("fast_resnet18.py")), "--runs", str(args.seeds), "--mode", mode,
              "--out", str(out / "fast"), "--no-baselines")
    run_part("1", [Job("fast", "resnet18", out / "fast", mode, name="fast-seeds", script=script)], 1,
             begun + FAST_SHARE * args.budget)
    summary["fast"] = fast_summary(fast_records())
    save(out / "summary.json", summary)
    print(f"  {describe_fast(summary['fast'])}", flush=True)

    print(f"\n2. full-mode records of notebooks 01, 05, 07 and the fast ablation, {args.jobs} at a time", flush=True)
    jobs = []
    for experiment in (*FULL_EXPERIMENTS, "fast-ablation"):
        settings = get_settings(experiment, mode)
        # A dry run checks every part, not every run: the first run of each experiment.
        for spec in run_specs(experiment, settings)[:1 if args.dry_run else None]:
            run_settings = spec.settings(settings)
            # Longest first (by the T4 estimate's proportions), so that no long run starts last.
            steps = run_settings.epochs * math.ceil((run_settings.train_size or 50_000) / run_settings.batch_size)
            weight = steps * t4_step_seconds(build(spec.model, run_settings.width), run_settings.batch_size)
            jobs.append((weight, Job(experiment, spec.label, out, mode, settings=graphs if experiment != "fast-ablation"
                                     else (), name=f"{experiment}-{spec.label}")))
    jobs = [job for _weight, job in sorted(jobs, key=lambda pair: -pair[0])]
    run_part("2", jobs, args.jobs, deadline - (0 if args.dry_run else SPEED_SECONDS))

    from course_utils.data import load_cifar10

    batch, width, steps = (8, 8, 2) if args.dry_run else (SPEED_BATCH, 64, 30)
    print(f"\n3. training images/s at batch {batch} (bf16, channels-last): eager, then CUDA graphs", flush=True)
    data = load_cifar10()
    images, labels = data.train_images[:batch].float().div(255), data.train_labels[:batch]
    for compile_mode in (False, "reduce-overhead"):
        for name in SPEED_MODELS:
            row = {"model": name, "width": width, "batch": batch, "precision": "bf16", "channels_last": True,
                   "step_path": Speed(compile=compile_mode).step_path(device)}
            if compile_mode and device.type != "cuda":
                row["skipped"] = "no CUDA graphs on a CPU (and compiling there takes a minute)"
            elif time.monotonic() > deadline - (10 if not compile_mode else 45):
                row["skipped"] = "out of time"
            else:
                started = time.monotonic()
                row["images_per_s"] = round(measure_training_speed(
                    build(name, width), images, labels, steps=steps, warmup=3, device=device,
                    speed=Speed(amp="bf16", channels_last=True, compile=compile_mode)), 1)
                row["seconds_with_warmup"] = round(time.monotonic() - started, 1)
                torch._dynamo.reset()  # the next model compiles afresh
            summary["speed"].append(row)
            print(f"  {name:<10} {row['step_path']:<22} "
                  + (f"{row['images_per_s']:>9,.0f} images/s" if "images_per_s" in row else row["skipped"]), flush=True)
    save(out / "summary.json", summary)

    written = {experiment: len(load_runs(out, experiment)) for experiment in (*FULL_EXPERIMENTS, "fast-ablation")}
    print(f"\nrecords: {', '.join(f'{name} {count}' for name, count in written.items())}, fast "
          f"{len(summary['fast']['seeds']) if summary['fast'] else 0} seed(s); not done: "
          + (", ".join(run["name"] for run in summary["runs"] if run["status"] != "done") or "nothing"))
    print(f"whole command: {time.monotonic() - begun:.0f} s; summary in {out / 'summary.json'}")
    return 0


def fast_summary(runs: dict) -> dict | None:
    """The fast recipe over seeds: test accuracy, training seconds with and without start-up."""
    if not runs:
        return None
    seeds = {seed: {"test_acc": history.test_acc, "wall_seconds": round(history.meta["wall_seconds"], 2),
                    "startup_seconds": round(history.startup_seconds(), 2),
                    "seconds_without_startup": round(history.meta["wall_seconds"] - history.startup_seconds(), 2),
                    "seconds_to_target_without_startup": history.seconds_to_accuracy(TARGET, without_startup=True),
                    "epochs": history.epochs_done, "step_path": history.config.get("step_path"),
                    "cuda_graph_skips": history.meta.get("cuda_graph_skips")}
             for seed, history in runs.items()}
    accuracies = [seed["test_acc"] for seed in seeds.values()]
    seconds = [seed["seconds_without_startup"] for seed in seeds.values()]
    return {"seeds": seeds, "target": TARGET, "mean_test_acc": statistics.mean(accuracies),
            "min_test_acc": min(accuracies), "max_test_acc": max(accuracies),
            "mean_seconds_without_startup": statistics.mean(seconds), "max_seconds_without_startup": max(seconds)}


def describe_fast(fast: dict | None) -> str:
    if fast is None:
        return "no run of the fast recipe finished"
    return (f"{len(fast['seeds'])} seed(s): test accuracy mean {fast['mean_test_acc']:.2%} (min {fast['min_test_acc']:.2%}, "
            f"max {fast['max_test_acc']:.2%}); training seconds without start-up mean "
            f"{fast['mean_seconds_without_startup']:.1f} (max {fast['max_seconds_without_startup']:.1f})")


def save(path: Path, summary: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1) + "\n")


def refuse(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
