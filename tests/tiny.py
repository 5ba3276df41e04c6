"""The tiny models the tests build (one place for their configs): ``tiny_model(arch, seed, **overrides)``."""

from __future__ import annotations

import torch

TINY = {
    "mst": {"preset": "tiny", "in_channels": 4, "num_classes": 5, "img_size": 16, "dim": 16, "depths": [2, 2],
            "heads": [2, 2], "window": 4},
    "spikformer": {"preset": "tiny", "in_channels": 4, "num_classes": 3, "img_size": 16, "patch_size": 4, "dim": 16,
                   "heads": 2, "depth": 1, "mlp_ratio": 2.0, "timesteps": 4},
}


def tiny_config(arch: str, **overrides) -> dict:
    return TINY[arch] | overrides


def tiny_model(arch: str, seed: int = 0, **overrides):
    """A small untrained model of family ``arch`` (torch seeded with ``seed`` first)."""
    from evstream.snn import build_model

    torch.manual_seed(seed)
    return build_model(arch, tiny_config(arch, **overrides))
