"""Issue 17 (8): the CLI side of the GUI's start: a missing recording is named before any model loads; no
Triton warning on the console with the Spikformer checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys

from evstream.paths import DEMO_RECORDING, MODELS


def test_no_such_file_is_said_before_the_model_loads(monkeypatch, capsys, tmp_path):
    import evstream.live.pipeline as pl
    from evstream.cli import main

    def no(*a, **k):
        raise AssertionError("the model was loaded for a file that is not there")

    monkeypatch.setattr(pl, "load_model", no)
    assert main(["run", str(tmp_path / "missing.aedat4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("missing.aedat4: no such file") and len(err.splitlines()) == 1


def test_no_triton_warning_on_the_console():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-m", "evstream", "run", str(DEMO_RECORDING), "--model",
                        str(MODELS / "spikformer-nmnist.pt"), "--max-decisions", "2"], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-800:]
    assert "Triton" not in r.stderr and "triton" not in r.stdout, r.stderr[-800:]
