"""Local development and the `make run` demo."""

from .base import *

DEBUG = env.bool("DEBUG", default=True)
