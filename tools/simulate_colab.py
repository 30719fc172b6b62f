"""Check a Colab learner's path on this machine: a new Python without the course, a notebook's first
cells, the course installed from its repository URL, then one smoke-mode experiment.

    python tools/simulate_colab.py                   # a few minutes: the virtualenv installs torch
    python tools/simulate_colab.py --keep /tmp/sim   # keep the folder to look inside

What it does, in a temporary folder:
1. clones this repository's committed HEAD (``origin/``) and writes, with tools/colab_links.py, its
   own ``file://`` URL into the clone's notebooks, as publishing would write the public URL;
2. makes a new virtualenv and checks that ``course_utils`` cannot be imported there;
3. runs notebook 00's set-up cell and the cells up to its versions check with that virtualenv's
   Python, from a folder outside the clone (as Colab's /content): the set-up cell must clone the
   course from the URL and install it with pip;
4. trains notebook 05's experiment in smoke mode on the offline CIFAR-10 copy (``--data``; on Colab
   torchvision downloads it) and checks that it produced finite losses.
Exit status 0 when every step passed. Commit first: step 1 sees only what is committed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_CELLS = 4  # notebook 00: set-up, imports + describe(), versions (markdown cells are skipped)

SMOKE_EXPERIMENT = '''
import math
from course_utils import data, runner
runs = runner.run_experiment("lr-decay", data=data.load_cifar10(download=False), progress=False)
losses = [loss for history in runs.values() for loss in history.step_loss]
assert losses and all(math.isfinite(loss) for loss in losses), losses
import course_utils
print(f"SIMULATION OK: course_utils from {course_utils.__file__}, {len(runs)} runs, {len(losses)} steps")
'''


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    parser.add_argument("--data", type=Path, default=ROOT / "data",
                        help="folder with cifar10.npz for the smoke run (default: the repository's data/)")
    args = parser.parse_args(argv)
    if not (args.data / "cifar10.npz").exists():
        print(f"error: no cifar10.npz in {args.data}; pass --data FOLDER", file=sys.stderr)
        return 2
    if args.keep and args.keep.exists():
        print(f"error: {args.keep} exists; give a new folder", file=sys.stderr)
        return 2
    work = args.keep or Path(tempfile.mkdtemp(prefix="simulate-colab-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return simulate(work, args.data.resolve())
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def simulate(work: Path, data: Path) -> int:
    origin = work / "origin"
    step(f"1. clone {ROOT} and point its notebooks at file://{origin}")
    subprocess.run(["git", "clone", "-q", str(ROOT), str(origin)], check=True)
    url = f"file://{origin}"
    subprocess.run([sys.executable, str(origin / "tools" / "colab_links.py"), "--root", str(origin),
                    "--repository", url], check=True)

    step("2. a new virtualenv without course_utils")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    content = work / "content"
    content.mkdir()
    missing = subprocess.run([str(python), "-c", "import course_utils"], cwd=content, capture_output=True)
    if missing.returncode == 0:
        print("error: course_utils is importable in the new virtualenv; the simulation proves nothing")
        return 1

    step("3. notebook 00's first cells, from a folder outside the clone (like Colab's /content)")
    notebook = json.loads((origin / "notebooks" / "00_setup.ipynb").read_text(encoding="utf-8"))
    cells = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"][:FIRST_CELLS - 1]
    if f'COURSE_REPOSITORY = "{url}"' not in cells[0]:
        print("error: notebook 00's set-up cell does not carry the repository URL")
        return 1
    environment = {**os.environ, "COURSE_MODE": "smoke", "COURSE_DATA_DIR": str(data), "MPLBACKEND": "Agg",
                   "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    environment.pop("PYTHONPATH", None)
    script = "\n\n".join(cells) + "\n" + SMOKE_EXPERIMENT
    result = subprocess.run([str(python), "-c", script], cwd=content, env=environment)
    if result.returncode != 0:
        print(f"\nSIMULATION FAILED (exit status {result.returncode})")
        return 1
    step("4. passed: the course installed itself from its URL and trained in smoke mode")
    return 0


if __name__ == "__main__":
    sys.exit(main())
