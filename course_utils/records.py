"""Run records: what a record holds (its schema), where records are written, and reading them back.

A run record is a ``history.History`` saved as JSON: the per-step and per-epoch series, ``config``
(what the run was) and ``meta`` (where and how it ran). ``CONFIG`` and ``META`` below are the one
written list of their keys, with who writes each and its meaning and units; CONTRIBUTING.md shows the
same table, and tests/test_records.py fails on a key written anywhere that is not in it. Read a
record's results through ``History``'s accessors (``test_acc``, ``final_loss()``, ``model_name``), not
by indexing its series: ``val_acc[-1]`` is a 1,000-image sample's accuracy for the laptop recipe.

``runner.run_experiment`` writes ``<experiment>__<label>.json`` into a folder (``record_paths``);
``load_runs`` and ``load_seed_runs`` read a folder back.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from course_utils.history import History, plain_data
from course_utils.modes import GROUPS
from course_utils.training import check_folder_writable

# key: (who writes it, what it means, in which unit)
CONFIG: dict[str, tuple[str, str]] = {
    "model": ("training.fit", "the architecture record of the model's factory (``model.arch``), e.g. "
                              "{'name': 'cifar_resnet', 'depth': 20, 'shortcut': 'A'}; ``models.build_model(**record)`` rebuilds it"),
    "model_name": ("training.fit", "the course's name of the model (models.build: 'resnet-20'), None if not built by name"),
    "parameters": ("training.fit", "trainable parameters"),
    "epochs": ("training.fit", "epochs asked for (a run stopped early says so in meta stop_reason)"),
    "batch_size": ("training.fit", "training images per optimiser step"),
    "train_images": ("training.fit", "training images the loader serves per epoch"),
    "cutout": ("training.fit", "side in pixels of the square Cutout blanks (0 = off)"),
    "optimizer": ("training.fit", "the optimiser's class, e.g. SGD"),
    "lr": ("training.fit", "the learning rate the schedule starts from (its peak for one-cycle), per step"),
    "momentum": ("training.fit", "SGD momentum"),
    "nesterov": ("training.fit", "Nesterov momentum, true or false"),
    "weight_decay": ("training.fit", "L2 weight decay per step"),
    "scheduler": ("training.fit", "the scheduler's class (StepLR, MultiStepLR, LambdaLR), None for a constant LR"),
    "precision": ("training.fit", "the training step's arithmetic: float32, bfloat16 or float16"),
    "channels_last": ("training.fit", "NHWC memory layout, true or false"),
    "compile": ("training.fit", "torch.compile: false, true or its mode (devices.COMPILE_MODES)"),
    "step_path": ("training.fit", "how the step ran: 'eager', 'compiled' or 'compiled, CUDA graphs'"),
    "flip_tta": ("training.fit", "test-time flip averaging in every evaluation, true or false"),
    "schedule": ("runner.train_run", "the learning-rate schedule (schedules.SCHEDULES)"),
    "seed": ("runner.train_run", "the seed of the weights, the data order and the subset"),
    "test_images": ("runner.train_run", "test images of the final test"),
    "val_images": ("runner.train_run", "test images evaluated after each epoch (a fixed sample, or all)"),
    "label_smoothing": ("runner.train_run", "weight of the uniform distribution mixed into the targets"),
    "warmup_fraction": ("runner.train_run", "one-cycle: share of the steps spent raising the LR"),
    "time_budget": ("runner.train_run", "seconds of training the run may use (None: its epochs)"),
    "image_budget": ("runner.train_run", "training images the run may use (None: no such cap)"),
    "experiment": ("runner.run_experiment", "the experiment's name (experiments.EXPERIMENTS)"),
    "run": ("runner.run_experiment", "the run's label within the experiment"),
    "command": ("runner.run_experiment", "the command that made the record, None from a notebook"),
    "overrides": ("runner.run_experiment", "settings changed from the mode's (--set), as the run took them"),
    "estimated_epoch_seconds": ("runner.run_experiment", "the seconds per epoch estimated before training"),
    "time_budget_choice": ("runner.run_experiment", "the epochs a time budget chose and why, None without one"),
    "fix": ("article_fixes.run_fixes", "which of the article's fixes the run had switched on"),
    "seconds": ("article_fixes.run_fixes", "seconds of training each fix was given"),
    "amp_bf16": ("training.fit, older records", "bf16 autocast, true or false (now: precision)"),
}
META: dict[str, tuple[str, str]] = {
    "device": ("training.fit", "the device, in words (devices.describe_device)"),
    "cpu_capability": ("training.fit", "the CPU vector units torch's kernels use (torch.backends.cpu.get_cpu_capability)"),
    "torch": ("training.fit", "torch's version"),
    "python": ("training.fit", "Python's version"),
    "date": ("training.fit", "when training started, local time with its zone"),
    "git_commit": ("training.fit", "the code's commit ('+dirty' with uncommitted changes; $COURSE_GIT_COMMIT wins)"),
    "wall_seconds": ("training.fit", "seconds spent in training steps, evaluations excluded, summed over epochs"),
    "fit_seconds": ("training.fit", "seconds of the whole fit call, evaluations and start-up included"),
    "stop_reason": ("training.fit", "why training ended early (history.STOP_REASONS), absent if it did not"),
    "stopped": ("training.fit", "the sentence that says so"),
    "warnings": ("training.fit", "sentences about results that mean little (a NaN test loss)"),
    "cuda_graph_skips": ("training.fit", "compiled graphs torch ran without CUDA graphs when they were asked for"),
    "final_test": ("runner.train_run", "the one test of all test images after a run that tested a sample each "
                                       "epoch or has translate_tta: images, accuracy (0-1), loss, flip_tta, "
                                       "translate_tta (absent in older records), seconds"),
    "mode": ("runner.run_experiment", "the run mode (modes.MODES)"),
}


def schema_markdown() -> str:
    """``CONFIG`` and ``META`` as the Markdown table CONTRIBUTING.md shows (a test keeps the two equal)."""
    rows = [f"| `{kind}[{key}]` | `{writer}` | {meaning} |"
            for kind, keys in (("config", CONFIG), ("meta", META)) for key, (writer, meaning) in keys.items()]
    return "\n".join(["| key | written by | meaning |", "|---|---|---|", *rows])


def undeclared_keys(history: History) -> list[str]:
    """The config and meta keys of ``history`` that ``CONFIG`` and ``META`` do not declare."""
    return ([f"config[{key!r}]" for key in history.config if key not in CONFIG]
            + [f"meta[{key!r}]" for key in history.meta if key not in META])


def slug(label: str) -> str:
    """A file-name-safe version of a run label: 'resnet18 StepLR' -> 'resnet18-steplr'."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def record_paths(experiment: str, labels: list[str], out_dir, save_models: bool, overwrite: bool) -> dict[str, Path]:
    """Where each run's record goes (``{label: path}``); checked before any training, not after the
    first run (a FileExistsError if a record is there and ``overwrite`` is False)."""
    if save_models and out_dir is None:
        raise ValueError("save_models=True needs an out_dir (--out) to write the checkpoints to")
    if out_dir is None:
        return {}
    _check_output_folder(Path(out_dir))
    paths = {label: Path(out_dir) / f"{experiment}__{slug(label)}.json" for label in labels}
    written = [*paths.values(), *(path.with_suffix(".pt") for path in paths.values() if save_models)]
    existing = [str(path) for path in written if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"run records already exist ({', '.join(existing)}); choose another "
                              f"output folder, or pass overwrite=True (--overwrite) to replace them")
    return paths


def check_neighbours(experiment: str, out_dir, labels: list[str], seed: int, mode: str, overrides: dict) -> None:
    """Records of the experiment's other runs already in ``out_dir`` must be of this call's seed, mode and
    settings (speed switches aside: they change how fast, not what is computed). Otherwise a folder
    would hold, unannounced, runs that cannot be compared with each other (``--only`` after another seed)."""
    if out_dir is None:
        return
    ours = {"seed": seed, "mode": mode, "settings": _compared_settings(overrides)}
    for path in sorted(Path(out_dir).glob(f"{experiment}__*.json")):
        try:
            history = History.load_json(path)
        except ValueError:
            continue  # not a record this code reads: it compares with nothing
        if history.config.get("run") in labels:
            continue  # this call replaces it (overwrite=True; refused before this otherwise)
        theirs = {"seed": history.config.get("seed"), "mode": history.meta.get("mode"),
                  "settings": _compared_settings(history.config.get("overrides") or {})}
        differ = [f"{key} {theirs[key]!r} there, {ours[key]!r} here" for key in ours
                  if theirs[key] is not None and theirs[key] != ours[key]]  # None: an older record says nothing
        if differ:
            raise ValueError(f"{out_dir} holds {path.name}, another run of {experiment} with other settings "
                             f"({'; '.join(differ)}): runs of different seeds or settings in one folder cannot be "
                             f"compared. Choose another output folder, or run with the same seed and settings.")


def _compared_settings(overrides: dict) -> dict:
    speed = set(GROUPS["speed"])
    return {key: value for key, value in plain_data(overrides).items() if key not in speed}


@contextlib.contextmanager
def claimed(paths):
    """Hold a lock file beside each record path (``.NAME.lock``, created only if absent) while the runs
    train, so that two runs started at once into one folder cannot both pass the check for existing
    records and then replace each other's."""
    locks = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = path.with_name(f".{path.name}.lock")
            try:
                descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                raise FileExistsError(f"another run is writing {path} (it holds {lock}): wait for it to finish, "
                                      f"choose another output folder, or delete {lock} if no run is "
                                      f"writing there any more") from None
            os.write(descriptor, f"{os.getpid()}\n".encode())
            os.close(descriptor)
            locks.append(lock)
        yield
    finally:
        for lock in locks:
            lock.unlink(missing_ok=True)


def _check_output_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"the output folder {folder} is a file; choose a folder for the run records")
    check_folder_writable(folder, f"run records to {folder}")


def load_runs(folder: str | os.PathLike, experiment: str | None = None, *, missing_ok: bool = False) -> dict[str, History]:
    """Run records in ``folder`` (e.g. ``data/results``); {} if none. With ``experiment``, that
    experiment's records as ``{run label: History}``; without, every record as ``{file name without
    .json: History}`` (``"fast__resnet18"``), since experiments share run labels (``resnet18``).

    A folder that does not exist is a FileNotFoundError (a misspelt name must not read as "no runs"),
    unless ``missing_ok=True``: for reference folders that the course fills only on some machines."""
    folder = Path(folder).expanduser()
    _check_records_folder(folder, missing_ok)
    pattern = f"{experiment}__*.json" if experiment else "*.json"
    runs, files = {}, {}
    for path in sorted(Path(folder).glob(pattern)):
        history = History.load_json(path)
        key = history.config.get("run", path.stem) if experiment else path.stem
        if key in runs:  # never let one record silently replace another
            raise ValueError(f"{path} and {files[key]} are both records of the run {key!r}; move one of them "
                             f"to another folder")
        runs[key], files[key] = history, path
    return runs


# The one command that makes every GPU record the notebooks read (benchmarks/gpu_full.py).
GPU_FULL_COMMAND = 'python benchmarks/gpu_full.py --commit "$(git rev-parse HEAD)" --out data/results/gpu-full'


def no_gpu_records(what: str = "GPU full-mode records") -> str:
    """What a notebook prints while data/results/gpu-full/ holds none of the records it reads."""
    return (f"No {what} in data/results/gpu-full/ yet. On a CUDA GPU, one command makes the GPU records "
            f"of notebooks 01, 05, 07 and 08 at once:\n  {GPU_FULL_COMMAND}")


def load_seed_runs(folder: str | os.PathLike, experiment: str, *,
                   missing_ok: bool = False) -> dict[int, dict[str, History]]:
    """Records of one experiment repeated over seeds, one sub-folder each (``folder/seed-N/``, as the
    benchmarks write them), as ``{seed: {run label: History}}`` in the order of the seeds; {} if there
    are none. ``missing_ok``: as in ``load_runs``. ``one_run_each`` turns it into ``{seed: History}``."""
    folder = Path(folder).expanduser()
    _check_records_folder(folder, missing_ok)
    seeds = {}
    for seed_folder in sorted(folder.glob("seed-*")):
        runs = load_runs(seed_folder, experiment)
        if not runs:
            continue  # a seed still to be trained
        found = sorted({history.config.get("seed") for history in runs.values()} - {None})
        if len(found) > 1:
            raise ValueError(f"{seed_folder} holds runs of several seeds ({found}); keep one seed per folder")
        name = seed_folder.name.removeprefix("seed-")  # for an older record that does not say its seed
        seed = found[0] if found else int(name) if name.isdigit() else name
        if seed in seeds:
            raise ValueError(f"two folders of {folder} hold seed {seed}; move one of them")
        seeds[seed] = runs
    return dict(sorted(seeds.items(), key=lambda item: (isinstance(item[0], str), item[0])))  # numbers first, 2 before 10


def one_run_each(seed_runs: dict[int, dict[str, History]]) -> dict[int, History]:
    """``{seed: History}`` from ``load_seed_runs`` for an experiment of one run per seed (the laptop
    recipe, the fast recipe); a ValueError naming the runs where a seed has several."""
    several = {seed: sorted(runs) for seed, runs in seed_runs.items() if len(runs) != 1}
    if several:
        raise ValueError(f"one run per seed expected, found {several}; pick a run by its label instead")
    return {seed: next(iter(runs.values())) for seed, runs in seed_runs.items()}


def _check_records_folder(folder: Path, missing_ok: bool) -> None:
    if folder.is_dir() or (missing_ok and not folder.exists()):
        return
    if folder.exists():
        raise NotADirectoryError(f"{folder} is a file, not a folder of run records")
    siblings = sorted(path.name for path in folder.parent.iterdir() if path.is_dir()) if folder.parent.is_dir() else []
    raise FileNotFoundError(f"no folder {folder}" + (f"; {folder.parent} holds: {', '.join(siblings[:20])}"
                                                     if siblings else "") + " (check the name)")


def reference_speed_during(history: History, benchmark: dict) -> float:
    """How fast the machine was during a benchmarked run, as the reference network's training images/s:
    the run's own images/s, converted by the speed ratio of the two networks that the probe before the
    run measured (``benchmark``: the run's ``benchmark.json`` from benchmarks/laptop_recipe.py)."""
    ratio = benchmark["reference_images_per_s"] / benchmark["recipe_images_per_s"]
    return history.images_trained / sum(history.epoch_seconds) * ratio


def slow_hour_minutes(history: History, benchmark: dict) -> float:
    """The wall minutes the benchmarked command would have taken in a slow hour, by which
    benchmarks/laptop_recipe.py judges it: its wall time, stretched by how much faster than the slow
    speed (``benchmark["slow_speed"]``, reference images/s) the machine trained during the run. A run
    on a slower hour keeps its own minutes (it had the handicap); 0 as the slow speed: no stretching."""
    slow = benchmark["slow_speed"]
    stretch = max(1.0, reference_speed_during(history, benchmark) / slow) if slow else 1.0
    return benchmark["wall_seconds"] / 60 * stretch
