"""The one place that imports rerun-sdk (an optional extra), so that a missing install is one clear sentence."""

from __future__ import annotations

from types import ModuleType

from ..errors import ConfigError

EXTRA = "view"
MISSING = (f"The viewer needs rerun-sdk, which is not installed; install it with "
           f"pip install 'nersemble_zarr[{EXTRA}]'.")


def rerun() -> ModuleType:
    """The ``rerun`` module, or a ConfigError naming the extra that installs it."""
    try:
        import rerun as rr
    except ImportError as error:
        raise ConfigError(MISSING) from error
    return rr
