"""Every source, emulated ones included, keeps the ``evstream.stream.Source`` contract: ``is_live``,
``position_us``, ``can_seek``, ``duration_us``; ``close()`` twice is fine; a context manager."""

from __future__ import annotations

import numpy as np
import pytest

from evstream.emulator import EmulatorSource, SaccadeSource
from evstream.paths import DEMO_RECORDING
from evstream.sources import open_source
from evstream.stream import Closeable, Source
from test_emulator import make_video


def sources(tmp_path):
    video = tmp_path / "moving.avi"
    make_video(video, 6)
    img = np.zeros((28, 28), np.uint8)
    img[8:20, 10:18] = 255
    return {"file": (open_source(DEMO_RECORDING), False, True),
            "video": (open_source(str(video)), False, False),
            "saccades": (SaccadeSource([img]), False, False)}


def test_every_source_keeps_the_contract(tmp_path):
    for name, (src, live, seekable) in sources(tmp_path).items():
        with src:
            assert isinstance(src, Source) and isinstance(src, Closeable), name
            assert src.is_live is live and src.can_seek is seekable, name
            assert src.duration_us >= 0 and (src.position_us is None or src.position_us >= 0), name
            chunk = next(iter(src))
            assert len(chunk.events) and tuple(chunk.sensor_size) == tuple(src.sensor_size), name
            if not seekable:
                with pytest.raises(NotImplementedError):
                    src.seek(0)
        assert src.closed, name
        src.close()  # twice: nothing happens


def test_file_source_knows_its_position_and_seeks():
    with open_source(DEMO_RECORDING) as src:
        it = iter(src)
        next(it)
        assert src.position_us is not None and 0 <= src.position_us <= src.duration_us
        src.seek(2_000_000)
        chunk = next(it)
        assert src.position_us >= 2_000_000 and int(chunk.events["t"][0]) >= 2_000_000


def test_emulator_source_is_a_source_class():
    assert issubclass(EmulatorSource, Source) and issubclass(SaccadeSource, Source)
