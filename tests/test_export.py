"""Export of a recording or a span of it: video frames drawn as the event view draws them (MP4, AVI/MJPG where
the MP4 codec is missing), events through the writers (AEDAT4, npz, HDF5) with the noise filters; atomic."""

from __future__ import annotations

import numpy as np
import pytest

from evstream.errors import EvstreamError
from evstream.export import VIDEO, Cancelled, ExportSpec, export
from evstream.filters import FilterChain
from evstream.live.view import EventView
from evstream.paths import DEMO_RECORDING
from evstream.readers import read_events

cv2 = pytest.importorskip("cv2")
DEMO = str(DEMO_RECORDING)


def span_events(t0, t1):
    ev = read_events(DEMO).events
    rel = ev["t"] - ev["t"][0]
    return ev[(rel >= t0) & (rel < t1)], int(ev["t"][0])


def test_video_of_a_span_has_a_frame_every_1_over_fps_drawn_as_the_event_view(tmp_path):
    out = tmp_path / "span.mp4"
    res = export(ExportSpec(DEMO, str(out), t0_us=1_000_000, t1_us=2_000_000, fps=20))
    assert res == {"path": str(out), "frames": 20, "size": (272, 272)}  # 34x34 enlarged 8x
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f[::8, ::8, ::-1].astype(int))  # one pixel of each 8x8 block, RGB
    assert len(frames) == 20 and not list(tmp_path.glob(".*"))
    ev, t_first = span_events(1_000_000, 2_000_000)
    view = EventView((34, 34), "frames", span_us=40_000)
    k = 10  # the frame at 1.5 s: the events of 1.46..1.5 s, shown in 10 ms slices as the GUI does
    t, rel = 1_000_000 + k * 50_000, ev["t"] - t_first
    for a in range(t - 50_000, t, 10_000):
        view.update(ev[(rel >= a) & (rel < a + 10_000)], t_first + a + 10_000)
    want = view.image().astype(int)
    assert want.max() > 200
    assert np.abs(frames[k - 1] - want).mean() < 6  # mp4v is lossy
    err = np.abs(frames[k - 1] - want).mean()
    assert all(np.abs(f - want).mean() > 3 * err for i, f in enumerate(frames) if i != k - 1)  # other moments


def test_mp4_falls_back_to_avi_when_its_codec_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(VIDEO, ".mp4", "XXXX")  # a codec OpenCV does not have
    res = export(ExportSpec(DEMO, str(tmp_path / "v.mp4"), t1_us=500_000, theme="light"))
    assert res["path"] == str(tmp_path / "v.avi") and res["frames"] == 15
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.avi"]
    ok, f = cv2.VideoCapture(res["path"]).read()
    assert ok and f.mean() > 200  # light theme: white background


@pytest.mark.parametrize("ext", [".h5", ".npz", ".aedat4"])
def test_events_of_a_span_through_the_filters(tmp_path, ext):
    out = tmp_path / f"span{ext}"
    res = export(ExportSpec(DEMO, str(out), t0_us=2_000_000, t1_us=4_000_000, filters="refractory=2000"))
    ev, _ = span_events(2_000_000, 4_000_000)
    want = FilterChain((34, 34), "refractory=2000")(ev)
    assert 0 < len(want) < len(ev)
    back = read_events(out)
    assert res["events"] == len(want) and back.sensor_size == (34, 34)
    for k in "txyp":
        assert np.array_equal(back.events[k], want[k])


def test_bad_outputs_and_cancel_leave_nothing(tmp_path):
    with pytest.raises(EvstreamError, match="no-such-folder") as e:
        export(ExportSpec(DEMO, str(tmp_path / "no-such-folder" / "x.mp4")))
    assert "\n" not in str(e.value)
    with pytest.raises(EvstreamError, match="known outputs"):
        ExportSpec(DEMO, str(tmp_path / "x.gif"))
    with pytest.raises(EvstreamError, match="empty"):
        ExportSpec(DEMO, str(tmp_path / "x.mp4"), t0_us=2_000_000, t1_us=1_000_000)
    seen = []
    with pytest.raises(Cancelled):
        export(ExportSpec(DEMO, str(tmp_path / "x.mp4")), progress=seen.append, cancel=lambda: len(seen) > 3)
    with pytest.raises(Cancelled):
        export(ExportSpec(DEMO, str(tmp_path / "x.h5")), progress=seen.append, cancel=lambda: len(seen) > 3)
    assert list(tmp_path.iterdir()) == [] and 0 < seen[0] <= seen[3] <= 1


def test_export_command(tmp_path, capsys):
    from evstream.cli import main

    assert main(["export", DEMO, str(tmp_path / "a.avi"), "--to", "1", "--fps", "10"]) == 0
    assert "10 frames 272x272" in capsys.readouterr().out
    assert main(["export", DEMO, str(tmp_path / "a.npz"), "--from", "7", "--filters", "ba"]) == 0
    n = len(read_events(tmp_path / "a.npz").events)
    ev, _ = span_events(7_000_000, 10_000_000)
    assert n == len(FilterChain((34, 34), "ba")(ev)) > 0
    assert main(["export", DEMO, str(tmp_path / "a.gif")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
