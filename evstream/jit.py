"""numba, set up once for evstream's kernels: ``from evstream.jit import nb`` (instead of ``import numba as nb``).

At its first compilation (or first load of a cached kernel) numba imports its NumPy lowering registry, which
checks whether SciPy's BLAS is there (for ``np.dot`` / ``np.linalg`` inside jitted code) by importing
``scipy.linalg`` — about 0.25 s of a live start on a 2-core laptop-class CPU, for something no evstream kernel
uses. Here that registry is imported once with ``scipy.linalg`` hidden, so numba records "no BLAS" without the
import; ``scipy.linalg`` itself stays importable for everyone else. The price: a kernel that calls ``np.dot``
or ``np.linalg`` in nopython mode would fail to compile in this process (none in evstream does).

The same for numba's typing of cffi functions: at the same first use it imports ``cffi`` and its C parser
(``pycparser``), 45–55 ms, to support calling cffi functions from jitted code — which no evstream kernel does;
its module is imported here with ``cffi`` hidden (``cffi`` itself stays importable).
"""

from __future__ import annotations

import sys

import numba as nb


def _import_without(hidden: str, module: str) -> None:
    """Import numba's ``module`` while ``hidden`` cannot be imported (it then records that it is not there)."""
    if hidden in sys.modules or module in sys.modules:
        return  # already imported: nothing to save
    sys.modules[hidden] = None  # `import hidden...` raises ImportError while this is set
    try:
        __import__(module)
    finally:
        del sys.modules[hidden]


_import_without("scipy.linalg", "numba.np.arraymath")
_import_without("cffi", "numba.core.typing.cffi_utils")

__all__ = ["nb"]
