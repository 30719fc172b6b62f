"""The laptop recipes, repeated over seeds: test accuracy, wall minutes and speed of each run, judged
at the speed of a slow hour.

    python benchmarks/laptop_recipe.py --runs 3 --out data/results/laptop-15-minutes
    python benchmarks/laptop_recipe.py --experiment laptop-hour --runs 3 --out data/results/laptop-hour
    python benchmarks/laptop_recipe.py --report data/results/laptop-15-minutes   # summarise, train nothing

Each run is the command a learner types, ``python -m course_utils run laptop --mode quick --seed N``
(or ``laptop-hour``), started as a process of its own and timed from start to exit: start-up, data
loading, training, the per-epoch tests on a 1,000-image sample and the final test of all 10,000
images in six views (flips and one-pixel shifts). The targets (``TARGETS``): at least 87% mean test
accuracy with every command within 15 minutes of wall time on 2 CPU cores (the first step's target
was 85%: data/results/laptop-resnet9), and 90% within 60 minutes.

A slow hour. VMs of the course's kind train the reference network at anything from 270 to 900
images/s, by their neighbours, and a network's speed can change by a fifth within one run. A slow
hour is one in which the reference network (ResNet18 at width 16, the recipe before the first laptop
recipe) trains at ``--slow-speed`` images/s (450). Before each run the script times the reference
and the recipe's own network on the same images, alternately, three times: their speed ratio turns
the slow speed into the recipe's images/s, and the run gets, besides its time budget, an image
budget (``image_budget``) of what a slow hour lets it train in that time. On a faster hour it spends
its images early and stops: it does the work of a slow hour, not more, however the speed moves
during the run. Its wall time is then stretched by how much faster than a slow hour it trained
(``records.slow_hour_minutes``) for the verdict; a run on a slower hour keeps its own minutes.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Each laptop experiment's target: mean test accuracy over the seeds, and wall minutes per command.
TARGETS = {"laptop": (0.87, 15.0), "laptop-hour": (0.90, 60.0)}
TARGET_SEEDS = 3  # a mean over fewer seeds is not the target's
REFERENCE = ("resnet18", 16)  # the recipe before this one: ResNet18 at width 16 (82.57% in 14 minutes)
# The reference is timed as it trained then (fp32, channels-last) whatever the recipe sets: it measures
# the machine, so a recipe that trains faster (in bf16, say) gets the credit in the speed ratio.
REFERENCE_SPEED = {"amp": "fp32", "channels_last": True}
RECORD = "benchmark.json"  # beside each seed's run record: the speed probe and the wall time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="laptop", choices=list(TARGETS),
                        help="the 15-minute recipe (laptop) or the hour's (laptop-hour)")
    parser.add_argument("--runs", type=int, default=3, help="number of seeds to train (0, 1, ...)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", default="data/runs/laptop", help="one sub-folder seed-N per run")
    parser.add_argument("--mode", default="quick", help="run mode of the laptop experiment")
    parser.add_argument("--slow-speed", type=float, default=450.0,
                        help="reference images/s that defines a slow hour (0: no image budget, no stretching)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="settings to change in every run, as in python -m course_utils run --set")
    parser.add_argument("--report", metavar="FOLDER", help="only summarise the records already in FOLDER")
    args = parser.parse_args(argv)

    from course_utils.records import load_seed_runs, one_run_each

    folder = Path(args.report or args.out)
    if not args.report:
        for seed in range(args.first_seed, args.first_seed + args.runs):
            seed_folder = folder / f"seed-{seed}"
            if seed_folder.exists() and any(seed_folder.iterdir()):
                print(f"error: {seed_folder} already holds records; choose another --out", file=sys.stderr)
                return 2
        for seed in range(args.first_seed, args.first_seed + args.runs):
            code = run_one_seed(seed, folder / f"seed-{seed}", args)
            if code:
                return code
    runs = one_run_each(load_seed_runs(folder, args.experiment))
    if not runs:
        print(f"error: no {args.experiment} run records in {folder}/seed-*/", file=sys.stderr)
        return 2
    return report(folder, runs, args.slow_speed, args.experiment)


def run_one_seed(seed: int, seed_folder: Path, args) -> int:
    """Probe the hour's speed, run the learner's command once with a slow hour's image budget, and keep
    its wall time."""
    from course_utils.cli import parse_overrides
    from course_utils.experiments import get_settings
    from course_utils.runner import apply_overrides

    settings = apply_overrides(get_settings(args.experiment, args.mode), parse_overrides(args.overrides))
    probe = probe_speeds(settings)
    # A recipe that runs by epochs has no budget to turn into images: its verdict rests on the stretch.
    ratio = probe["recipe_images_per_s"] / probe["reference_images_per_s"]
    images = round(args.slow_speed * ratio * settings.time_budget) if args.slow_speed and settings.time_budget else None
    overrides = list(args.overrides) + ([f"image_budget={images}"] if images else [])
    command = [sys.executable, "-m", "course_utils", "run", args.experiment, "--mode", args.mode, "--seed", str(seed),
               "--out", str(seed_folder), "--no-progress"] + (["--set", *overrides] if overrides else [])
    print(f"seed {seed}: reference {probe['reference_images_per_s']:.0f} images/s, recipe "
          f"{probe['recipe_images_per_s']:.0f} images/s; budget "
          + (f"{settings.time_budget / 60:.4g} min or {images:,} training images ({images / settings.time_budget:.0f} "
             f"images/s)" if images else "by epochs" if not settings.time_budget else
             f"{settings.time_budget / 60:.4g} min"), flush=True)
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    seed_folder.mkdir(parents=True, exist_ok=True)
    (seed_folder / "output.txt").write_text(finished.stdout + finished.stderr)
    if finished.returncode:
        print(f"error: seed {seed} failed (exit {finished.returncode}); its output is in "
              f"{seed_folder / 'output.txt'}:\n{finished.stderr[-2000:]}", file=sys.stderr)
        return 1
    record = {"seed": seed, "command": "python " + " ".join(command[1:]), "wall_seconds": round(wall, 1),
              "slow_speed": args.slow_speed, "image_budget": images, **probe}
    (seed_folder / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    print(f"seed {seed}: wall {wall / 60:.2f} min", flush=True)
    return 0


def probe_speeds(settings, rounds: int = 3, steps: int = 8) -> dict:
    """Training images/s of the reference network and the recipe's, alternately on one batch of
    real images at the recipe's batch size (the recipe in its own precision and layout, the reference
    in ``REFERENCE_SPEED``): the fastest of ``rounds`` timings each. A neighbour on the VM only ever
    slows a timing down, and the image budget rests on the ratio of the two: one slow timing in three
    would otherwise move it by a fifth (seen on 2026-12-02: 961 recipe images/s in one probe, 1,195-1,276
    in four rounds a few minutes later)."""
    from course_utils.data import load_cifar10
    from course_utils.devices import Speed, describe_device, pick_device
    from course_utils.models import build
    from course_utils.training import measure_training_speed

    device = pick_device(verbose=False)
    data = load_cifar10()
    images = data.train_images[:settings.batch_size].float().div(255)
    labels = data.train_labels[:settings.batch_size]
    networks = {"reference": (*REFERENCE, Speed(**REFERENCE_SPEED)),
                "recipe": (settings.models[0], settings.width, settings.speed)}
    speeds = {name: [] for name in networks}
    for _ in range(rounds):
        for name, (model_name, width, speed) in networks.items():
            model = build(model_name, width)
            speeds[name].append(measure_training_speed(model, images, labels, steps=steps, warmup=2,
                                                       device=device, speed=speed))
    return {"device": describe_device(device), "reference": f"{REFERENCE[0]} width {REFERENCE[1]}",
            "recipe": f"{settings.models[0]} width {settings.width}",
            "reference_images_per_s": round(max(speeds["reference"]), 1),
            "recipe_images_per_s": round(max(speeds["recipe"]), 1),
            "probe_rounds": {name: [round(value, 1) for value in values] for name, values in speeds.items()}}


def report(folder: Path, runs: dict, slow_speed: float, experiment: str = "laptop") -> int:
    from course_utils.records import reference_speed_during, slow_hour_minutes

    rows = []
    for seed, history in runs.items():
        path = folder / f"seed-{seed}" / RECORD
        if not path.exists():
            print(f"error: {path} is missing: these records were not written by this script", file=sys.stderr)
            return 2
        rows.append((history, json.loads(path.read_text())))
    history, probe = rows[0]
    kernels = f" ({history.meta['cpu_capability']} kernels)" if "cpu_capability" in history.meta else ""
    print(f"\n{len(rows)} run(s) on {history.meta['device']}{kernels}, torch {history.meta['torch']}; "
          f"network {probe['recipe']}, reference {probe['reference']}:")
    accuracies, slow_minutes = [], []
    for history, probe in rows:
        training_seconds = sum(history.epoch_seconds)
        minutes = probe["wall_seconds"] / 60
        accuracies.append(history.test_acc)
        slow_minutes.append(slow_hour_minutes(history, probe))
        print(f"  seed {history.config['seed']}: test accuracy {history.test_acc:.2%}, wall {minutes:.2f} min "
              f"({slow_minutes[-1]:.2f} at the slow speed), {len(history.step_loss):,} steps in "
              f"{history.epochs_done} epochs at {history.images_trained / training_seconds:.0f} images/s "
              f"({history.meta.get('stopped', 'all its epochs')}); reference {probe['reference_images_per_s']:.0f} "
              f"images/s before the run, {reference_speed_during(history, probe):.0f} during it (by the speed ratio "
              f"{probe['recipe_images_per_s'] / probe['reference_images_per_s']:.2f})")
    print(f"test accuracy: mean {statistics.mean(accuracies):.2%}, spread {min(accuracies):.2%} to "
          f"{max(accuracies):.2%}" + (f", std {statistics.stdev(accuracies):.2%}" if len(rows) > 1 else ""))
    print(f"wall minutes at the slow speed: mean {statistics.mean(slow_minutes):.2f}, "
          f"most {max(slow_minutes):.2f}")
    if not is_the_recipe(rows, experiment, history.meta.get("mode", "quick")):  # the mode the runs ran in
        print(f"(not the {experiment} recipe's own network, budget and test: no verdict against its target)")
        return 0
    target_accuracy, target_minutes = TARGETS[experiment]
    reached = statistics.mean(accuracies) >= target_accuracy and max(slow_minutes) <= target_minutes
    outcome = ("reached" if reached else "NOT reached") if len(rows) >= TARGET_SEEDS else \
        (f"not shown: {len(rows)} of the {TARGET_SEEDS} seeds it needs"
         + (" (within it so far)" if reached else " (short of it so far)"))
    print(f"target (>= {target_accuracy:.0%} mean test accuracy over {TARGET_SEEDS} seeds, <= {target_minutes:.0f} "
          f"wall minutes per run" + (f" at a slow hour's speed ({slow_speed:.0f} reference images/s)" if slow_speed
                                     else "") + "): " + outcome)
    return 0


def is_the_recipe(rows, experiment: str, mode: str) -> bool:
    """Whether the runs trained the recipe's network for its budget (not e.g. --set time_budget=3480),
    with a slow hour's image budget, and tested it as the recipe does (an older record's final test had
    no shifted views; an older benchmark cut the time budget instead of capping the images)."""
    from course_utils.experiments import get_settings

    recipe = get_settings(experiment, mode)
    for history, probe in rows:
        model = history.config["model"]
        if history.config["time_budget"] != recipe.time_budget or (model["name"], model.get("width")) != \
                (recipe.models[0], recipe.width):
            return False
        if probe["slow_speed"] and history.config.get("image_budget") != probe.get("image_budget"):
            return False
        if set(history.config.get("overrides") or {}) - {"image_budget"}:  # e.g. --set amp=bf16
            return False
        if history.meta.get("final_test", {}).get("translate_tta", False) != recipe.translate_tta:
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
