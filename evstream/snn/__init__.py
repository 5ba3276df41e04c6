"""Spiking transformers: the Masked Spiking Transformer (ANN with QCFS, converted to IF neurons), its
streaming SNN view, checkpoints. Registries: ``ARCHS`` (model families) and ``CONVERSIONS`` (ANN -> SNN
modes); other families and modes register here.
"""

from evstream.snn.checkpoint import load_checkpoint, save_checkpoint
from evstream.snn.mst import MST, PRESETS, MSTConfig
from evstream.snn.neurons import QCFS, HalfIF
from evstream.snn.streaming import SpikingRunner, StepResult
from evstream.snn.spikformer import Spikformer, SpikformerConfig, SpikformerRunner
from evstream.snn.ecmt import ECMTRunner  # noqa: E402  (after streaming: it subclasses SpikingRunner)

ARCHS = {"mst": MST, "spikformer": Spikformer}
CONVERSIONS = {"mst": SpikingRunner, "ecmt": ECMTRunner, "spikformer": SpikformerRunner}


def build_model(arch: str = "mst", config: dict | None = None):
    """A new model of family ``arch`` from a config dict (``{"preset": "tiny", ...overrides}``)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r} (known: {', '.join(ARCHS)})")
    return ARCHS[arch](config)


__all__ = ["ARCHS", "CONVERSIONS", "ECMTRunner", "MST", "PRESETS", "QCFS", "HalfIF", "MSTConfig", "SpikingRunner", "StepResult",
           "Spikformer", "SpikformerConfig", "SpikformerRunner",
           "build_model", "load_checkpoint", "save_checkpoint"]
