"""`python -m profiler ...` (profiler/__init__.py has already taken the working directory off sys.path: see there)."""

import sys

from .cli import main

sys.exit(main())
