"""pytest set-up shared by the unit tests and the notebooks (nbval)."""

import os

# Notebook kernels inherit this environment: run them in smoke mode unless told otherwise,
# so `pytest --nbval` proves every notebook runs, in seconds rather than hours.
os.environ.setdefault("COURSE_MODE", "smoke")


def pytest_collectstart(collector):
    """nbval compares what a notebook prints to stdout and shows, never its stderr: warnings
    (a new DeprecationWarning in torch, a tqdm notice) go there and must not fail a cell.
    Expected errors are checked through nbval's raises-exception tag, not through stderr."""
    if hasattr(collector, "skip_compare"):  # nbval's notebook collector (IPyNbFile)
        collector.skip_compare += ("stderr",)
