"""Which files to fetch: a source's selection (``nersemble_zarr.sources``) turned into checked local paths.

Nothing here does I/O. ``local_path`` refuses anything that could land outside ``ROOT/{source}``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Literal

from ..errors import CatalogueError, shown
from ..sources import Listing, Selection, get_source
from ..sources.base import PointcloudFrames

FetchRequest = Selection  # the name fetch's callers know
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+.\-]*$")


def make_request(
    source: str,
    participants: Iterable[int] | Literal["all"] | None = None,
    assets: Iterable[str] | str | None = None,
    pointcloud_frames: PointcloudFrames | int = (0,),
    sequences: Iterable[str] | None = None,
    cameras: Iterable[str] | None = None,
) -> Selection:
    """Check every name the source knows before any request (no I/O); unknown names raise CatalogueError."""
    return get_source(source).select(participants, sequences, cameras, assets, pointcloud_frames)


def local_path(root: str | Path, source: str, relative: str) -> Path:
    """``ROOT/{source}/{relative}``, refusing any path part that could escape that folder.

    ``ROOT/{source}`` itself may be a link (to another disk); no folder below it may be. The final name
    is not resolved: a link there is replaced by the download, never followed.
    """
    get_source(source)
    parts = relative.split("/")
    if not all(_SAFE_PART.match(part) for part in parts):
        raise CatalogueError(f"Refusing unsafe relative path {shown(relative)}.")
    base = (Path(root) / source).resolve()
    folder = base.joinpath(*parts[:-1])
    if folder.resolve() != folder:
        raise CatalogueError(f"Refusing relative path {shown(relative)}: a folder on its way below {base} is a link.")
    return folder / parts[-1]


def plan_paths(request: Selection, listing: Listing) -> list[str]:
    """Relative paths (below ``ROOT/{source}``) of every file the request covers, by its source's rules."""
    return get_source(request.source).plan_paths(request, listing)
