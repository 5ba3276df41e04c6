"""Spiking transformers, a pure model library: the Masked Spiking Transformer (ANN with QCFS, converted to
IF neurons, or to ECMT's multi-threshold neurons), Spikformer, their streaming SNN views, checkpoints.
Families and conversion modes register themselves (:mod:`evstream.snn.registry`: ``ARCHS``,
``CONVERSIONS``); importing this package imports every one of them.
"""

from evstream.snn.registry import ARCHS, CONVERSIONS, build_model, make_config  # noqa: I001  (the registry first)
from evstream.snn.neurons import QCFS, HalfIF
from evstream.snn.streaming import SpikingRunner, StepResult
from evstream.snn.mst import MST, PRESETS, MSTConfig
from evstream.snn.spikformer import Spikformer, SpikformerConfig, SpikformerRunner
from evstream.snn.ecmt import ECMTRunner
from evstream.snn.checkpoint import load_checkpoint, save_checkpoint

__all__ = ["ARCHS", "CONVERSIONS", "ECMTRunner", "MST", "PRESETS", "QCFS", "HalfIF", "MSTConfig", "SpikingRunner",
           "StepResult", "Spikformer", "SpikformerConfig", "SpikformerRunner", "build_model", "load_checkpoint",
           "make_config", "save_checkpoint"]
