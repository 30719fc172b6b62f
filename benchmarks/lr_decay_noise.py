"""The noise that notebook 05's verdict reads the decay's gain against: how far apart two runs end
that are one run until the decay point, and then differ only by chance.

    python benchmarks/lr_decay_noise.py --seeds 10 --out data/runs/seeds/lr-decay-noise
    python benchmarks/lr_decay_noise.py --report data/runs/seeds/lr-decay-noise     # train nothing

The constant-LR and the StepLR run of ``lr-decay`` start from the same seed: the same weights,
training images, batches and crops, step for step, until the decay. What they end with apart is
caused by the decay, and by how the remaining epochs happen to fall. To size that second part, each
seed trains the experiment's two runs (``run_experiment``, as quick_seeds.py does; OUT/seed-N/) and a
third, "other draws": the constant-LR run again, identical to it until the decay epoch, then
shuffled and cropped from another seed (OUT/other-draws/seed-N.json). The other-draws run differs from
the constant run by chance alone; over seeds, the root mean square of that difference is the paired
noise (``verdicts.MARGINS["lr-decay"]`` is set from it), and the report prints it beside the decay's gain.
"""

import argparse
import statistics
import sys
from functools import partial
from pathlib import Path

# The "other draws" loader's seed is the run's seed plus this: far from any seed a learner passes.
OTHER_DRAWS_SEED = 1_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds to train")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--mode", default="quick")
    parser.add_argument("--out", default="data/runs/seeds/lr-decay-noise")
    parser.add_argument("--report", metavar="FOLDER", help="only summarise the records already in FOLDER")
    args = parser.parse_args()

    from course_utils import verdicts
    from course_utils.data import TensorLoader, load_cifar10
    from course_utils.devices import describe_device, pick_device
    from course_utils.experiments import get_settings, run_specs
    from course_utils.history import History
    from course_utils.records import load_seed_runs
    from course_utils.runner import run_experiment, train_run

    class OtherDrawsFrom(TensorLoader):
        """A TensorLoader whose epochs from ``branch_epoch`` on shuffle and crop from another seed."""

        def __init__(self, *args, branch_epoch: int, **kwargs):
            super().__init__(*args, **kwargs)
            self.branch_epoch, self.first_seed = branch_epoch, self.seed

        def __iter__(self):
            self.seed = self.first_seed + (OTHER_DRAWS_SEED if self.epoch >= self.branch_epoch else 0)
            return super().__iter__()

    folder = Path(args.report or args.out)
    if not args.report:
        device = pick_device(verbose=False)
        print(f"device: {describe_device(device)}", flush=True)
        settings = get_settings("lr-decay", args.mode)
        constant = next(spec for spec in run_specs("lr-decay", settings) if spec.label.endswith("constant LR"))
        cifar = load_cifar10()
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            path = folder / "other-draws" / f"seed-{seed}.json"
            if path.exists():
                print(f"error: {path} exists; choose another --out or --first-seed (records are never written over)",
                      file=sys.stderr)
                return 2
            command = " ".join(["python benchmarks/lr_decay_noise.py", *sys.argv[1:], f"(seed {seed})"])
            runs = run_experiment("lr-decay", out_dir=folder / f"seed-{seed}", seed=seed, progress=False,
                                  command=command, mode=args.mode, data=cifar)
            decayed = next(history for label, history in runs.items() if label != constant.label)
            branch_epoch, shared = decay_point(runs[constant.label], decayed)
            print(f"--- {constant.label}, other draws from epoch {branch_epoch + 1} ---", flush=True)
            data = cifar.subset(settings.train_size, settings.test_size, seed)  # as run_experiment does
            other = train_run(constant, settings, data, device=device, seed=seed, progress=False,
                              make_train_loader=partial(OtherDrawsFrom, branch_epoch=branch_epoch))
            if other.step_loss[:shared] != runs[constant.label].step_loss[:shared]:
                print(f"error: seed {seed}: the other-draws run left the constant run before the decay epoch",
                      file=sys.stderr)
                return 1
            other.meta["mode"] = args.mode
            other.config.update(experiment="lr-decay", run=f"{constant.label}, other draws", command=command,
                                other_draws_from_epoch=branch_epoch, other_draws_seed=seed + OTHER_DRAWS_SEED)
            other.save_json(path)

    seeds = load_seed_runs(folder, "lr-decay")
    others = {int(path.stem.split("-")[1]): History.load_json(path)
              for path in sorted((folder / "other-draws").glob("seed-*.json"))}
    rows = []
    for seed, runs in sorted(seeds.items()):
        if seed not in others or len(runs) != 2:
            continue
        constant = next(h for label, h in runs.items() if label.endswith("constant LR"))
        decayed = next(h for label, h in runs.items() if not label.endswith("constant LR"))
        rows.append((seed, constant, decayed, others[seed]))
    if not rows:
        print(f"error: no complete seeds in {folder} (seed-N/ with both runs and other-draws/seed-N.json)",
              file=sys.stderr)
        return 2
    first = rows[0][1]
    print(f"\nlr-decay, {len(rows)} seeds, {first.meta['mode']} mode, on {first.meta['device']}, torch {first.meta['torch']}")
    print("| seed | constant LR | other draws | StepLR | chance: loss / accuracy | decay's gain: loss / accuracy |")
    print("|---|---|---|---|---|---|")
    chance_loss, chance_accuracy, gain_loss, gain_accuracy = [], [], [], []
    for seed, constant, decayed, other in rows:
        chance_loss.append(other.final_loss() - constant.final_loss())
        chance_accuracy.append(other.test_acc - constant.test_acc)
        gain_loss.append(constant.final_loss() - decayed.final_loss())
        gain_accuracy.append(decayed.test_acc - constant.test_acc)
        cells = [f"{h.final_loss():.3f} / {h.test_acc:.1%}" for h in (constant, other, decayed)]
        print(f"| {seed} | " + " | ".join(cells) + f" | {chance_loss[-1]:+.3f} / {100 * chance_accuracy[-1]:+.1f} | "
              f"{gain_loss[-1]:+.3f} / {100 * gain_accuracy[-1]:+.1f} |")
    print(f"\nchance (other draws minus constant): loss {spread(chance_loss, '+.3f')}, "
          f"accuracy {spread([100 * a for a in chance_accuracy], '+.2f')} points")
    print(f"the decay's gain: loss {spread(gain_loss, '.3f')}, accuracy {spread([100 * a for a in gain_accuracy], '.2f')} points; "
          f"smallest {min(gain_loss):.3f} and {100 * min(gain_accuracy):.1f}")
    print(f"largest chance difference: {max(map(abs, chance_loss)):.3f} in loss, "
          f"{100 * max(map(abs, chance_accuracy)):.1f} points")
    margins = verdicts.MARGINS["lr-decay"]
    shown = sum(verdicts.lr_decay({"constant LR": c, "StepLR": d}).shown for _, c, d, _ in rows)
    print(f"with the margins of verdicts.MARGINS['lr-decay'] ({margins['final_loss']} in loss, "
          f"{100 * margins['test_accuracy']:.0f} points): the lesson shows in {shown} of {len(rows)} seeds")
    return 0


def decay_point(constant, decayed) -> tuple[int, int]:
    """The epoch in which the two runs' learning rates first differ, and the steps before it."""
    parted = next(step for step, (a, b) in enumerate(zip(constant.step_lr, decayed.step_lr)) if a != b)
    steps_per_epoch = len(constant.step_lr) // constant.epochs_done
    return parted // steps_per_epoch, parted // steps_per_epoch * steps_per_epoch


def spread(values: list[float], spec: str) -> str:
    """Mean, root mean square (the noise's size whatever its sign) and standard deviation over the seeds."""
    rms = statistics.fmean(value * value for value in values) ** 0.5
    return f"mean {statistics.fmean(values):{spec}}, root mean square {rms:.3f}, sd " + (
        f"{statistics.stdev(values):.3f}" if len(values) > 1 else "n/a")


if __name__ == "__main__":
    sys.exit(main())
