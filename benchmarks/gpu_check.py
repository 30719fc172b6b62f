"""The course's prepared check on a CUDA GPU: one command, at most 10 minutes on one H100-class GPU.

    python benchmarks/gpu_check.py --out data/results/gpu-check    # one CUDA GPU, all of CIFAR-10
    python benchmarks/gpu_check.py --dry-run                       # any CPU: every part, tiny sizes

It runs, in this order, and skips a part (saying so) when the time left in --budget is too short:

1. speed: training images/s of ResNet-20, ResNet-56 and ResNet18 (width 64, CIFAR stem) at batch
   128, in fp32 / bf16 / fp16 autocast, NCHW and channels_last, without torch.compile;
2. speed of every model the full-mode experiments train, at the settings full mode uses (the
   numbers behind the time estimates of `python -m course_utils list`);
3. notebook 05's experiment (lr-decay: constant LR vs StepLR) in full mode for --epochs epochs;
4. the fast recipe (`benchmarks/fast_resnet18.py`'s experiment "fast") once: its test accuracy
   after every epoch and the training seconds until it first reached 94%;
5. part 1 again with torch.compile, for as many combinations as the time left allows (each
   compilation takes tens of seconds).

It writes, to --out, `speed.json` (parts 1, 2, 5, with the device, versions, date and commit) and
the run records of parts 3 and 4 (`course_utils.history.History`, provenance in their meta).
`--dry-run` runs every part in smoke mode (tiny data, 2 timed steps) so the script can be checked
without a GPU; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

SPEED_MODELS = ("resnet-20", "resnet-56", "resnet18")
PRECISIONS = ("fp32", "bf16", "fp16")
SPEED_BATCH = 128  # the paper's batch, and full mode's for notebooks 01, 05 and 07
TARGET = 0.94


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="folder for speed.json and the run records (default: "
                        "data/results/gpu-check; with --dry-run a new temporary folder)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of notebook 05's experiment (part 3)")
    parser.add_argument("--budget", type=float, default=540, help="seconds the whole check may take")
    parser.add_argument("--dry-run", action="store_true", help="smoke-mode sizes: checks the script, on any device")
    parser.add_argument("--no-compile", action="store_true", help="skip part 5 (torch.compile)")
    args = parser.parse_args(argv)
    mode = "smoke" if args.dry_run else "full"
    started = time.perf_counter()

    import torch

    from course_utils.data import load_cifar10
    from course_utils.devices import Speed, choose_precision, describe_device, pick_device
    from course_utils.experiments import EXPERIMENTS
    from course_utils.models import build, count_macs
    from course_utils.runner import run_experiment
    from course_utils.training import git_commit, measure_training_speed

    # A dry run checks the script, not the committed records: it writes to a folder of its own.
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gpu-check-dry-run-")) if args.dry_run \
        else Path("data/results/gpu-check")
    existing = sorted(str(path) for path in out.glob("*.json")) if out.is_dir() else []
    if existing:
        print(f"error: {out} already holds records ({', '.join(existing)}); choose another --out", file=sys.stderr)
        return 2
    device = pick_device(verbose=False)
    if device.type != "cuda" and not args.dry_run:
        print("error: no CUDA GPU here; this check is for a GPU (use --dry-run to try it on a CPU)", file=sys.stderr)
        return 2
    print(f"device: {describe_device(device)}; torch {torch.__version__}; mode {mode}")
    data = load_cifar10()
    # Dry run: 2 timed steps of batch 8, ResNet18/34/50 at width 8 (16-bit autocast on a CPU is slow).
    steps, warmup, batch, wide = (2, 1, 8, 8) if args.dry_run else (20, 3, SPEED_BATCH, 64)
    if args.dry_run:
        args.budget = float("inf")
    speed = {"meta": {"device": describe_device(device), "torch": torch.__version__, "git_commit": git_commit(),
                      "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "dry_run": args.dry_run,
                      "command": "python benchmarks/gpu_check.py " + " ".join(argv or sys.argv[1:])},
             "rows": [], "skipped": [], "errors": []}

    def time_left() -> float:
        return args.budget - (time.perf_counter() - started)

    def measure(part: str, name: str, width: int, precision: str, channels_last: bool, compile: bool,
                model_batch: int = batch) -> None:
        model = build(name, width)
        macs = count_macs(model)
        if compile:
            torch._dynamo.reset()  # compile afresh: past ~8 recompilations dynamo would quietly run eager
        begun = time.perf_counter()
        images = data.train_images[:model_batch].float().div(255)  # real images; speed does not need them normalised
        rate = measure_training_speed(model, images, data.train_labels[:model_batch], steps=steps, warmup=warmup,
                                      device=device, speed=Speed(precision, channels_last, compile))
        row = {"part": part, "model": name, "width": width, "batch": model_batch, "precision": precision,
               "channels_last": channels_last, "compile": compile, "images_per_s": round(rate, 1),
               "forward_macs_per_image": macs, "seconds_with_warmup": round(time.perf_counter() - begun, 1)}
        speed["rows"].append(row)
        print(f"  {name:<16} {precision} {'NHWC' if channels_last else 'NCHW'} "
              f"{'compiled' if compile else 'eager':<8} batch {model_batch}: {rate:>9,.0f} images/s "
              f"({row['seconds_with_warmup']} s)", flush=True)

    def guarded(part: str, work):
        """Run one part; an error is printed and recorded, and the check goes on with the next part."""
        try:
            return work()
        except Exception as error:  # noqa: BLE001  (a prepared check must bring back what it can)
            speed["errors"].append(f"{part}: {type(error).__name__}: {error}")
            print(f"  {part} failed: {type(error).__name__}: {error}", flush=True)
            return None

    def save_speed() -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "speed.json").write_text(json.dumps(speed, indent=1) + "\n")

    print("\n1. training speed, eager", flush=True)
    for name in SPEED_MODELS:
        for precision in PRECISIONS:
            for channels_last in (False, True):
                measure("1", name, wide, precision, channels_last, compile=False)
    save_speed()

    print("\n2. every full-mode model at full mode's settings (eager)", flush=True)
    default_precision = choose_precision(device)
    seen = set()
    for experiment in EXPERIMENTS.values():
        full = experiment.settings["full"]
        width, model_batch = (wide, batch) if args.dry_run else (full.width or 64, full.batch_size)
        for name in full.models:
            if (name, width, model_batch) in seen:
                continue
            seen.add((name, width, model_batch))
            if time_left() < 300:  # keep time for parts 3 and 4
                speed["skipped"].append(f"part 2: {name}")
                continue
            measure("2", name, width, default_precision, device.type == "cuda", compile=False,
                    model_batch=model_batch)
    save_speed()

    print(f"\n3. notebook 05's experiment (lr-decay) in {mode} mode, {args.epochs} epochs",
          flush=True)
    if time_left() > 200:
        guarded("part 3", lambda: run_experiment("lr-decay", out_dir=out, data=data, device=device, progress=False,
                                                 overrides={"epochs": args.epochs}, command=speed["meta"]["command"],
                                                 mode=mode))
    else:
        speed["skipped"].append("part 3")
        print("  skipped: too little time left")

    print("\n4. the fast recipe, once", flush=True)
    if time_left() > 150:
        runs = guarded("part 4", lambda: run_experiment("fast", out_dir=out, data=data, device=device, progress=False,
                                                        command=speed["meta"]["command"], mode=mode))
        if runs:
            fast = runs["resnet18"]
            reached = fast.seconds_to_accuracy(TARGET)
            print(f"  test accuracy {fast.test_acc:.2%} after {fast.epochs_done} epochs, "
                  f"{fast.meta['wall_seconds']:.1f} s of training; {TARGET:.0%} "
                  + (f"first reached after {reached:.1f} s" if reached is not None else "not reached"), flush=True)
    else:
        speed["skipped"].append("part 4")
        print("  skipped: too little time left")

    print("\n5. training speed, torch.compile", flush=True)
    combinations = [(name, precision, True) for precision in (default_precision, *PRECISIONS)
                    for name in SPEED_MODELS]
    combinations = list(dict.fromkeys(combinations))  # the default precision first, once
    combinations += [(name, default_precision, False) for name in SPEED_MODELS]
    longest = 0.0
    for name, precision, channels_last in combinations:
        if args.no_compile or time_left() < 1.5 * longest + 15:
            speed["skipped"].append(f"part 5: {name} {precision} channels_last={channels_last}")
            continue
        begun = time.perf_counter()
        guarded(f"part 5: {name} {precision}", lambda: measure("5", name, wide, precision, channels_last, compile=True))
        longest = max(longest, time.perf_counter() - begun)
        save_speed()
        if args.dry_run:
            break  # one compilation proves the path; more would only cost minutes on a CPU
    save_speed()
    print(f"\nskipped: {', '.join(speed['skipped']) or 'nothing'}")
    print(f"errors: {'; '.join(speed['errors']) or 'none'}")
    print(f"whole check: {time.perf_counter() - started:.0f} s; records in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
