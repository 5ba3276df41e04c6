"""Issue 17 (1): a missing Qt platform library is one line naming the Debian packages, before Qt can abort."""

from __future__ import annotations

import subprocess

from app import qtcheck

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007f90)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f91)
\tlibxcb-icccm.so.4 => not found
"""


def fake_ldd(out):
    def run(cmd, **kw):
        assert cmd[0] == "ldd" and cmd[1].endswith("libqxcb.so")
        return subprocess.CompletedProcess(cmd, 0, stdout=out, stderr="")
    return run


def test_missing_libraries_are_named_with_their_debian_packages(tmp_path):
    plugin = tmp_path / "libqxcb.so"
    plugin.write_bytes(b"")
    missing = qtcheck.missing_libraries(plugin, run=fake_ldd(LDD))
    assert missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    assert qtcheck.packages(missing) == ["libxcb-icccm4", "libxcb-keysyms1"]
    assert qtcheck.missing_libraries(plugin, run=fake_ldd(LDD.replace("not found", "/lib/x.so (0x1)"))) == []


def test_only_when_qt_would_use_x11():
    assert qtcheck.uses_xcb({"QT_QPA_PLATFORM": "xcb"})
    assert not qtcheck.uses_xcb({"QT_QPA_PLATFORM": "offscreen"})
    assert not qtcheck.uses_xcb({"WAYLAND_DISPLAY": "wayland-0"}) and not qtcheck.problem({"QT_QPA_PLATFORM": "vnc"})


def test_gui_says_which_packages_to_install_in_one_line(monkeypatch, capsys):
    from evstream.cli import main

    if qtcheck.xcb_plugin() is None:
        import pytest

        pytest.skip("PyQt6 without its xcb plugin")
    monkeypatch.setattr(qtcheck.subprocess, "run", fake_ldd(LDD))
    monkeypatch.setattr(qtcheck.shutil, "which", lambda name: "/usr/bin/ldd")  # the same on a machine without ldd
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert main(["gui", "--duration", "1"]) == 2  # before any QApplication: the process is still here
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in err and "libxcb-icccm.so.4" in err
