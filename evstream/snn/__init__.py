"""Spiking transformers: the Masked Spiking Transformer (ANN with QCFS, converted to IF neurons), its
streaming SNN view, checkpoints. Registries: ``ARCHS`` (model families) and ``CONVERSIONS`` (ANN -> SNN
modes); other families and modes register here.
"""

from evstream.snn.checkpoint import load_checkpoint, save_checkpoint
from evstream.snn.mst import MST, PRESETS, MSTConfig
from evstream.snn.neurons import QCFS, HalfIF
from evstream.snn.streaming import SpikingRunner, StepResult

ARCHS = {"mst": MST}
CONVERSIONS = {"mst": SpikingRunner}


def build_model(arch: str = "mst", config: dict | None = None):
    """A new model of family ``arch`` from a config dict (``{"preset": "tiny", ...overrides}``)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r} (known: {', '.join(ARCHS)})")
    return ARCHS[arch](config)


__all__ = ["ARCHS", "CONVERSIONS", "MST", "PRESETS", "QCFS", "HalfIF", "MSTConfig", "SpikingRunner", "StepResult",
           "build_model", "load_checkpoint", "save_checkpoint"]
