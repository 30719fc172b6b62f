"""pytest set-up shared by the unit tests and the notebooks (nbval)."""

import os

# Notebook kernels inherit this environment: run them in smoke mode unless told otherwise,
# so `pytest --nbval` proves every notebook runs, in seconds rather than hours.
os.environ.setdefault("COURSE_MODE", "smoke")

# With pytest-xdist (`-n 2` in pyproject.toml) two workers share the machine: give each worker, and
# the notebook kernels it starts, its share of the cores, so that two processes do not each run a
# thread per core and slow each other down. Set before anything imports torch.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(share))


def pytest_collectstart(collector):
    """nbval compares what a notebook prints to stdout and shows, never its stderr: warnings
    (a new DeprecationWarning in torch, a tqdm notice) go there and must not fail a cell.
    Expected errors are checked through nbval's raises-exception tag, not through stderr."""
    if hasattr(collector, "skip_compare"):  # nbval's notebook collector (IPyNbFile)
        collector.skip_compare += ("stderr",)
