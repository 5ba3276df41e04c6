"""Kept for old imports: the live pipeline lives in :mod:`evstream.live` (one module per concern)."""

from evstream.live import *  # noqa: F401,F403
from evstream.live import __all__  # noqa: F401
from evstream.paths import DEMO_MODEL, DEMO_RECORDING, REPO  # noqa: F401
