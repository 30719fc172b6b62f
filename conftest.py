"""pytest set-up shared by the unit tests and the notebooks (nbval)."""

import os

# Notebook kernels inherit this environment: run them in smoke mode unless told otherwise,
# so `pytest --nbval` proves every notebook runs, in seconds rather than hours.
os.environ.setdefault("COURSE_MODE", "smoke")
