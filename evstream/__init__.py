"""evstream: event cameras in, spiking-transformer predictions out, live.

Data flows one way; each stage is a module named after what it is:

    readers / sources  ->  slicing  ->  representations  ->  snn (model step)
                       ->  monitors / energy  ->  sinks (app GUI, CLI, files)

See docs/architecture.md for the tour of one event from file to prediction.
"""

from evstream.errors import EvstreamError
from evstream.events import EVENT_DTYPE, EventChunk, empty_events, make_events

__version__ = "0.1.0"

__all__ = ["EVENT_DTYPE", "EventChunk", "EvstreamError", "empty_events", "make_events", "__version__"]
