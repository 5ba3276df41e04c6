"""Before Qt starts: the system libraries Qt's X11 platform plugin (``libqxcb.so``) needs. A missing one
makes ``QApplication`` abort the process (SIGABRT) with a hint that often names the wrong package; this
check turns it into one line naming the exact Debian packages. Nothing here imports Qt itself.

    missing = missing_libraries()            # sonames ldd cannot find, e.g. ["libxcb-icccm.so.4"]
    packages(missing)                        # ["libxcb-icccm4"]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# what ``ldd`` lists for PyQt6 6.11's libqxcb.so and libQt6XcbQpa.so (beyond libc, libstdc++ and Qt's own),
# with the Debian 12 package that ships each
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxcb-util.so.1": "libxcb-util1", "libxcb-image.so.0": "libxcb-image0",
    "libxcb-randr.so.0": "libxcb-randr0", "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0", "libxcb-shm.so.0": "libxcb-shm0", "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0", "libxcb-shape.so.0": "libxcb-shape0", "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1", "libX11-xcb.so.1": "libx11-xcb1", "libX11.so.6": "libx11-6",
    "libxkbcommon.so.0": "libxkbcommon0", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0", "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1", "libfontconfig.so.1": "libfontconfig1", "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0", "libgthread-2.0.so.0": "libglib2.0-0", "libdbus-1.so.3": "libdbus-1-3",
}


def xcb_plugin() -> Path | None:
    """PyQt6's ``libqxcb.so`` (None when PyQt6 or the plugin is not there)."""
    import importlib.util

    spec = importlib.util.find_spec("PyQt6")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "Qt6" / "plugins" / "platforms" / "libqxcb.so"
    return path if path.exists() else None


def missing_libraries(plugin: Path | None = None, run=None) -> list[str]:
    """Sonames the plugin needs that the dynamic linker cannot find (``ldd``; [] when ldd is absent)."""
    plugin = plugin or xcb_plugin()
    if plugin is None or shutil.which("ldd") is None:
        return []
    run = run or subprocess.run
    try:
        out = run(["ldd", str(plugin)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    missing = [line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line]
    return list(dict.fromkeys(missing))


def packages(missing) -> list[str]:
    return list(dict.fromkeys(DEBIAN_PACKAGES.get(m, m) for m in missing))


def uses_xcb(environ=os.environ) -> bool:
    """Whether Qt will pick its X11 plugin: on Linux, unless another platform is asked for (or Wayland)."""
    want = environ.get("QT_QPA_PLATFORM", "")
    if want:
        return want.split(":")[0].split(";")[0] == "xcb"
    return sys.platform.startswith("linux") and not environ.get("WAYLAND_DISPLAY")


def problem(environ=os.environ, run=None) -> str | None:
    """One line naming the missing libraries and the Debian packages, or None when Qt can start."""
    if not uses_xcb(environ):
        return None
    missing = missing_libraries(run=run)
    if not missing:
        return None
    pk = " ".join(packages(missing))
    return (f"the GUI cannot start: Qt's X11 plugin needs {', '.join(missing)}, which are not installed: "
            f"sudo apt-get install {pk} (or run headless: `evstream run SOURCE`, QT_QPA_PLATFORM=offscreen)")


if __name__ == "__main__":  # scripts/setup.sh: say what to install, never fail the set-up
    line = problem()
    print(f"note: {line}" if line else "the GUI's Qt libraries are all there")
