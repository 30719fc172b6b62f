"""`python -m course_utils ...`: the experiment command line (see course_utils.experiments)."""

import sys

from course_utils.experiments import main

sys.exit(main())
