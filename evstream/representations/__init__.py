"""Representations: polarity frames, SAE, time surfaces, event counts, voxel grids.

Pure functions in :mod:`~evstream.representations.functional`; transform objects with a serialisable
config and streaming state in :mod:`~evstream.representations.transforms`; ``from_config`` rebuilds the
exact input a checkpoint was trained on.
"""

from evstream.representations import functional
from evstream.representations.transforms import (
    KINDS,
    SAE,
    EventCount,
    PolarityFrames,
    Pooled,
    Representation,
    SlicedFrames,
    SpatialPool,
    TimeSurface,
    VoxelGrid,
    from_config,
)

__all__ = ["KINDS", "SAE", "EventCount", "PolarityFrames", "Pooled", "Representation", "SlicedFrames", "SpatialPool",
           "TimeSurface", "VoxelGrid", "from_config", "functional"]
