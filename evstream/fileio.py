"""Files that appear whole or not at all.

    with atomic_write("cache.npz") as f:      # a file object on a temporary name next to the target
        np.savez(f, events=ev)
    with atomic_path("out.aedat4") as tmp:    # a temporary path, for libraries that open files themselves
        write_with_some_library(tmp)

The target is replaced (``os.replace``, atomic within one file system) only when the block ends normally,
after the data reached the disk (``fsync``). On any exception -- including ``KeyboardInterrupt`` and the
:class:`Terminated` that :func:`exit_on_sigterm` raises for SIGTERM -- the temporary file is removed and an
existing target is left as it was. Only SIGKILL (or a power cut) can leave a temporary
``.NAME.tmp-PID-XXXXXX.EXT`` next to the target (the next write of that target removes it once its process
is gone); the target itself is never half written.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
from pathlib import Path
from typing import Iterator

from evstream.errors import EvstreamError

TMP_TAG = ".tmp-"


def temp_name(path: str | os.PathLike) -> Path:
    """A fresh hidden name in the folder of ``path`` that keeps its extension (some writers check it)."""
    p = Path(path)
    return p.with_name(f".{p.stem}{TMP_TAG}{os.getpid()}-{secrets.token_hex(3)}{p.suffix}")


def sweep_stale(path: str | os.PathLike) -> int:
    """Remove temporary files that writers of ``path`` left when they were killed (their process is gone);
    returns how many were removed."""
    p = Path(path)
    rx = re.compile(re.escape(f".{p.stem}{TMP_TAG}") + r"(\d+)-[0-9a-f]{6}" + re.escape(p.suffix))
    removed = 0
    try:
        names = os.listdir(p.parent)
    except OSError:
        return 0
    for name in names:
        m = rx.fullmatch(name)
        if m and not _alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(p.parent / name)
                removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but is not ours
        return True
    return True


def check_folder(path: str | os.PathLike) -> Path:
    """``path`` as a Path, after a one-line error if its folder does not exist or it names a folder."""
    p = Path(path)
    if not p.parent.is_dir():
        raise EvstreamError("cannot write: folder does not exist", where=p.parent)
    if p.is_dir():
        raise EvstreamError("cannot write: is a folder", where=p)
    return p


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same existing file (through links or different spellings)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Flush ``tmp`` to disk and rename it over ``path``."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        discard(tmp)
        raise EvstreamError(f"cannot write ({exc.strerror or exc})", where=path) from None


def discard(tmp: str | os.PathLike) -> None:
    """Remove a temporary file if it is there."""
    with contextlib.suppress(OSError):
        os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path``, renamed to ``path`` when the block ends normally, removed when it
    raises (anything, ``KeyboardInterrupt`` included)."""
    p = check_folder(path)
    sweep_stale(p)
    tmp = temp_name(p)
    try:
        yield tmp
    except BaseException:
        discard(tmp)
        raise
    commit(tmp, p)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_args):
    """:func:`atomic_path` with the temporary file opened (``mode`` ``"wb"`` or ``"w"``)."""
    with atomic_path(path) as tmp:
        try:
            f = open(tmp, mode, **open_args)
        except OSError as exc:
            raise EvstreamError(f"cannot write ({exc.strerror or exc})", where=path) from None
        with f:
            yield f


class Terminated(SystemExit):
    """SIGTERM arrived (see :func:`exit_on_sigterm`); the exit status is 143."""


@contextlib.contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM (``kill``, a service manager stopping us) into :class:`Terminated` in the main thread,
    so ``finally`` blocks and :func:`atomic_path` clean up as they do for Ctrl-C."""
    def handler(signum, frame):
        raise Terminated(128 + signum)

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
