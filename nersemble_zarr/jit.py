"""numba compilation of the per-pixel kernels: ``nogil``, cached on disk where numba finds a writable folder.

numba caches in ``NUMBA_CACHE_DIR`` when set, else the package's ``__pycache__``, else its user cache folder
(``$XDG_CACHE_HOME/numba``, by default ``~/.cache/numba``); where none can be written, a kernel is compiled in
each process instead of failing.
"""

from __future__ import annotations

from typing import Callable, Sequence


def compile_kernel(function: Callable, signatures: Sequence | None = None) -> Callable:
    """``numba.njit(nogil=True)`` of ``function`` (compiled now for ``signatures``, else on its first call),
    cached on disk where numba finds a writable folder."""
    import numba  # here: importing numba takes 0.2 s, and only a kernel needs it

    def jit(**options) -> Callable:
        return (numba.njit(list(signatures), **options) if signatures else numba.njit(**options))(function)

    try:
        return jit(nogil=True, cache=True)
    except RuntimeError as error:  # numba: "cannot cache function ...: no locator available for file ..."
        if "no locator available" not in str(error):
            raise
        return jit(nogil=True)
