"""Worker processes for bulk file work (decoding into the cache, writing synthetic datasets).

    for pos, result in imap_progress(fn, jobs, workers=4, desc="caching"):
        ...                      # results in completion order, ``pos`` = index into ``jobs``

``fn`` must be a module-level function (jobs and results are pickled). ``workers`` 0 or 1 runs in this
process; ``None`` uses every core this process may run on. An exception in a worker (e.g. an
:class:`~evstream.errors.EvstreamError` naming a bad file) stops the pool and is raised here; what the
finished jobs wrote stays written.
"""

from __future__ import annotations

import multiprocessing
import os
import sys


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def default_workers() -> int:
    """The machine's cores, shared among the processes of one torchrun node."""
    return max(1, cpu_count() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def _call(item):
    fn, pos, job = item
    return pos, fn(job)


def _init_worker(close_fds):
    for fd in close_fds:  # e.g. the parent's lock: a worker outliving a killed parent must not hold it
        try:
            os.close(fd)
        except OSError:
            pass


def imap_progress(fn, jobs: list, workers: int | None = None, desc: str = "", unit: str = "item",
                  progress: bool = True, initial: int = 0, total: int | None = None, close_fds=()):
    """Yield ``(position, fn(jobs[position]))`` as jobs finish, with a tqdm bar on stderr."""
    from tqdm import tqdm

    workers = default_workers() if workers is None else int(workers)
    total = len(jobs) + initial if total is None else total
    bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not progress, file=sys.stderr,
               leave=False, dynamic_ncols=True)
    try:
        items = [(fn, i, j) for i, j in enumerate(jobs)]
        if workers <= 1 or len(jobs) <= 1:
            for item in items:
                yield _call(item)
                bar.update(1)
            return
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        chunk = max(1, min(16, len(jobs) // (workers * 8)))
        with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker, initargs=(tuple(close_fds),)) as pool:
            for pos, res in pool.imap_unordered(_call, items, chunksize=chunk):
                yield pos, res
                bar.update(1)
    finally:
        bar.close()
