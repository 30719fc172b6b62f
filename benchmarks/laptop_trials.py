"""Paired trials for the laptop recipe: what a change of its settings, a moving average of the
weights and the test-time views each buy, read from runs of one seed with the same training time.

    python benchmarks/laptop_trials.py --seconds 640 --out data/runs/trial-lr-0.2.json --set lr=0.2
    python benchmarks/laptop_trials.py --seconds 640 --out data/runs/trial-first.json --ema 0.99,0.995 --set lr=0.1

Each trial trains the laptop recipe (``runner.train_run``, the path of ``python -m course_utils run
laptop``) for ``--seconds`` of training with the settings changed by ``--set``, then tests the final
weights on all 10,000 test images three ways: as they are, with the flip (``flip_tta``) and in six
views (``translate_tta``). With ``--ema``, moving averages of the weights (one per decay per step,
BatchNorm statistics averaged too) are kept during the same run and tested the same three ways.

Trials of one seed differ from each other by their settings and by the steps the hour allowed
(printed): compare them one after another on the same hour. The test views and the averages are
read from one run, so their differences are free of seed and hour noise.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

WAYS = {"plain": {}, "flip": {"flip_tta": True}, "six views": {"flip_tta": True, "translate_tta": True}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, required=True, help="seconds of training (the time budget)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", default="quick", help="run mode of the laptop experiment")
    parser.add_argument("--ema", default="", metavar="DECAYS",
                        help="comma-separated decays per step of moving averages to keep, e.g. 0.99,0.995")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="settings to change, as in python -m course_utils run --set")
    parser.add_argument("--out", required=True, help="a new JSON file for the results")
    args = parser.parse_args(argv)

    from course_utils.cli import parse_overrides
    from course_utils.data import TensorLoader, load_cifar10
    from course_utils.devices import pick_device
    from course_utils.experiments import get_settings, run_specs
    from course_utils.runner import apply_overrides, train_run
    from course_utils.training import evaluate

    out = Path(args.out)
    if out.exists():
        print(f"error: {out} already exists; choose another --out", file=sys.stderr)
        return 2
    decays = [float(decay) for decay in args.ema.split(",") if decay]
    if not all(0 < decay < 1 for decay in decays):
        print(f"error: --ema takes decays between 0 and 1, got {args.ema!r}", file=sys.stderr)
        return 2
    overrides = parse_overrides(args.overrides)
    # The run's own final test is the flip's: the six views are among the ways tested below.
    settings = apply_overrides(get_settings("laptop", args.mode),
                               {**overrides, "time_budget": args.seconds, "translate_tta": False})
    spec = run_specs("laptop", settings)[0]
    device = pick_device(verbose=False)
    data = load_cifar10().subset(settings.train_size, settings.test_size, args.seed)

    averages: dict[float, AveragedModel] = {}
    model = spec.build_model(settings, args.seed)

    def update_averages(optimizer, *_):
        # After every optimiser step; made at the first one, so that they copy the model as fit laid it out.
        if not averages:
            averages.update({decay: AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
                             for decay in decays})
        for average in averages.values():
            average.update_parameters(model)

    hook = register_optimizer_step_post_hook(update_averages) if decays else None  # every optimiser's steps
    try:
        history = train_run(spec, settings, data, device=device, seed=args.seed, progress=False, model=model)
    finally:
        if hook is not None:
            hook.remove()
    test = TensorLoader(data.test_images, data.test_labels, batch_size=500, augment=False, shuffle=False,
                        device=device)
    networks = {"final weights": model} | {f"moving average {decay:g}": average.module
                                           for decay, average in averages.items()}
    result = {"settings": {key: str(value) for key, value in overrides.items()}, "seed": args.seed,
              "seconds": args.seconds, "steps": len(history.step_loss), "epochs": history.epochs_done,
              "device": history.meta["device"], "date": history.meta["date"],
              "git_commit": history.meta["git_commit"], "test_accuracy": {}}
    print(f"{len(history.step_loss):,} steps in {args.seconds:g} s ({history.epochs_done} epochs, last partial), "
          f"on {history.meta['device']}; test accuracy on {len(data.test_labels):,} images:")
    for name, network in networks.items():
        started = time.perf_counter()
        accuracies = {way: evaluate(network, test, device=device, speed=settings.speed, **views).accuracy
                      for way, views in WAYS.items()}
        result["test_accuracy"][name] = accuracies
        print(f"  {name:<22} " + ", ".join(f"{way} {accuracy:.2%}" for way, accuracy in accuracies.items())
              + f" ({time.perf_counter() - started:.0f} s)", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
