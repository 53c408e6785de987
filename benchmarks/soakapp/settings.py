"""benchmarks.settings with the soak's app (benchmarks/soak.py selects them)."""

from benchmarks.settings import *  # noqa: F403
from benchmarks.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks.soakapp"]
