"""Local development and the `make run` demo."""

from .base import *

DEBUG = env.bool("DEBUG", default=True)

# The embedded demo runs on SQLite, which ignores the covering columns of the dashboards' rollup indexes.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    SILENCED_SYSTEM_CHECKS = [*SILENCED_SYSTEM_CHECKS, "models.W040"]
