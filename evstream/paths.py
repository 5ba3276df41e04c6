"""Where things are: the repository, the shared data folder, the shipped demo recording and model.

One place for every default location (the CLI, the GUI, the benchmarks and the tests read these):

    REPO             the repository root (this file's grandparent)
    data_root()      ``$EVSTREAM_DATA``, else ``<repo>/../shared/data``
    DEMO_RECORDING   what ``evstream gui`` plays with no argument
    DEMO_MODEL       the default checkpoint of ``evstream run`` / ``gui`` / ``eval``
    MODELS           the shipped checkpoints (the GUI's model menu lists them)
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
RECORDINGS = REPO / "recordings"
DEMO_RECORDING = RECORDINGS / "demo_digits.aedat4"
DEMO_LABELS = RECORDINGS / "demo_digits.labels.csv"
DEMO_MODEL = MODELS / "mst-nmnist.pt"


def data_root() -> Path:
    """The shared data folder: ``$EVSTREAM_DATA`` when set, else ``shared/data`` next to the repository."""
    return Path(os.environ.get("EVSTREAM_DATA", REPO.parent / "shared" / "data"))
