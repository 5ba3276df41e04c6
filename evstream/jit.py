"""numba, set up once for evstream's kernels: ``from evstream.jit import nb`` (instead of ``import numba as nb``).

At its first compilation (or first load of a cached kernel) numba imports its NumPy lowering registry, which
checks whether SciPy's BLAS is there (for ``np.dot`` / ``np.linalg`` inside jitted code) by importing
``scipy.linalg`` — about 0.25 s of a live start on a 2-core laptop-class CPU, for something no evstream kernel
uses. Here that registry is imported once with ``scipy.linalg`` hidden, so numba records "no BLAS" without the
import; ``scipy.linalg`` itself stays importable for everyone else. The price: a kernel that calls ``np.dot``
or ``np.linalg`` in nopython mode would fail to compile in this process (none in evstream does).
"""

from __future__ import annotations

import sys

import numba as nb


def _registry_without_scipy_linalg() -> None:
    if "scipy.linalg" in sys.modules or "numba.np.arraymath" in sys.modules:
        return  # already imported: nothing to save
    sys.modules["scipy.linalg"] = None  # `import scipy.linalg...` raises ImportError while this is set
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules["scipy.linalg"]


_registry_without_scipy_linalg()

__all__ = ["nb"]
