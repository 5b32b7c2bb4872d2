"""What a source is: how its files are named, listed, selected and fetched, described once per source.

A source is one folder of the access-controlled servers: the ``nvs``, ``mono_flame_avatar`` and ``svfr``
benchmarks, the NeRSemble v2 ``dataset``. ``fetch`` and the CLI know nothing else about a source than what its
``Source`` object says: where its access URL comes from (``Access``), which index files the server lists it
in (fetched first; they are the authority for names), how those are parsed (``Listing``), which assets it
has, and which relative paths a ``Selection`` covers. The paths below the source's URL are its paths below
``ROOT/{name}``: the local copy is the server's layout.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .. import catalogue
from ..errors import CatalogueError, ConfigError, shown
from ..units import listed

log = logging.getLogger(__name__)
PointcloudFrames = tuple[int, ...] | Literal["all"]


@dataclass(frozen=True)
class Access:
    """Where a source's secret access URL is read from: an environment variable, else the official kit's
    ``~/.config/{config_folder}/.env`` file that sets that variable."""

    env_var: str
    config_folder: str

    @property
    def placeholder(self) -> str:
        """What stands in for the URL wherever it would be shown."""
        return f"<{self.env_var}>"

    def env_file(self) -> Path:
        """The settings file for this URL: ``$XDG_CONFIG_HOME/{config_folder}/.env``, else the official kit's."""
        config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        return config_home / self.config_folder / ".env"

    def env_files(self) -> tuple[Path, ...]:
        """The settings files read for this URL, in order: ``env_file()``, then the official kit's
        ``~/.config/{config_folder}/.env``, which the kit reads whatever XDG_CONFIG_HOME says."""
        return tuple(dict.fromkeys((self.env_file(), Path.home() / ".config" / self.config_folder / ".env")))


BENCHMARK_ACCESS = Access("NERSEMBLE_BENCHMARK_URL", "nersemble_benchmark")
DATASET_ACCESS = Access("NERSEMBLE_DATA_URL", "nersemble_data")


@dataclass(frozen=True)
class Listing:
    """What a source's index files say: each participant's sequences (index order) and, where the index has
    them, each participant's timesteps (NVS point cloud frames)."""

    sequences: Mapping[int, tuple[str, ...]]
    timesteps: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    index_name: str = "index"  # the index file named in messages


@dataclass(frozen=True)
class Selection:
    """A checked request: participants (None = all the index lists), sequences and cameras (None = all),
    assets, and point cloud frames (timestep labels, NVS only)."""

    source: str
    participants: tuple[int, ...] | None
    sequences: tuple[str, ...] | None
    cameras: tuple[str, ...] | None
    assets: tuple[str, ...]
    pointcloud_frames: PointcloudFrames = (0,)


class Source(ABC):
    """One source: its name (the folder below ROOT and the CLI argument), description and assets."""

    name: str
    description: str  # as in "The server does not serve {description}"
    access: Access = BENCHMARK_ACCESS
    url_path: str = ""  # the source's folder below its access URL ("" when the URL is the source's root)
    assets: tuple[str, ...] = ()
    default_assets: tuple[str, ...] = ()
    index_files: tuple[str, ...] = ()  # fetched first, parsed by ``listing``

    # ------------------------------------------------------------ selection (before any network traffic)
    def select(
        self,
        participants: Iterable[int] | Literal["all"] | None = None,
        sequences: Iterable[str] | None = None,
        cameras: Iterable[str] | None = None,
        assets: Iterable[str] | str | None = None,
        pointcloud_frames: PointcloudFrames | int = (0,),
    ) -> Selection:
        """Check every name that can be checked without the index; unknown names raise CatalogueError."""
        chosen = None if participants is None or participants == "all" else self.check_participants(
            _as_ids(participants))
        names = None if sequences is None else tuple(self.check_sequence(s) for s in sequences)
        serials = None if cameras is None else tuple(catalogue.check_serial(c) for c in cameras)
        return Selection(self.name, chosen, names or None, serials or None, self._check_assets(assets),
                         _check_frames(pointcloud_frames))

    def check_participants(self, requested: tuple[int, ...]) -> tuple[int, ...]:
        """Participant ids as far as they can be checked before the index is read (by default: integers)."""
        return requested

    def check_sequence(self, name: str) -> str:
        """A sequence name as far as it can be checked before the index is read (by default: a safe name)."""
        return catalogue.check_safe_name(name, "sequence")

    def _check_assets(self, assets: Iterable[str] | str | None) -> tuple[str, ...]:
        if assets is None:
            return self.default_assets
        if assets == "all":
            return self.assets
        names = (assets,) if isinstance(assets, str) else tuple(assets)
        for name in names:
            if name not in self.assets:
                raise CatalogueError(f"Unknown asset {shown(name)} for {self.name}; expected one of "
                                     f"{', '.join(self.assets)} or 'all'.")
        if not names:
            raise CatalogueError(f"No assets chosen for {self.name}; expected some of {', '.join(self.assets)}.")
        return tuple(dict.fromkeys(names))

    # ------------------------------------------------------------ the index, and the paths a selection covers
    @abstractmethod
    def listing(self, index: Mapping[str, bytes]) -> Listing:
        """Parse the bytes of the index files (``index_files`` -> bytes); bad content raises InputDataError."""

    @abstractmethod
    def plan_paths(self, selection: Selection, listing: Listing) -> list[str]:
        """Relative paths (below the source's folder) of every file the selection covers, in a stable order."""

    # ------------------------------------------------------------ shared rules for the subclasses
    def chosen_sequences(self, selection: Selection, listing: Listing) -> list[tuple[int, tuple[str, ...]]]:
        """(participant, its selected sequences) in index order. A participant the index does not list, or a
        sequence no chosen participant has, is a CatalogueError naming it; a range (``-p 17-30``) keeps only the
        ids the index lists."""
        on_server = listing.sequences
        if selection.participants is None:
            chosen = tuple(on_server)
        else:
            chosen = tuple(p for p in selection.participants
                           if p in on_server or not isinstance(p, catalogue.RangeMember))
            if not chosen:
                raise CatalogueError(f"No participant listed in {listing.index_name} lies in the range(s) asked "
                                     f"for ({min(selection.participants)}..{max(selection.participants)}).")
        for participant in chosen:
            if participant not in on_server:
                known = listed([str(p) for p in on_server]) or "none"
                raise CatalogueError(f"Participant {participant} is not listed in {listing.index_name} "
                                     f"(it lists {known}).")
        if selection.sequences is None:
            return [(p, on_server[p]) for p in chosen]
        for name in selection.sequences:
            if not any(name in on_server[p] for p in chosen):
                which = f"participant {chosen[0]}" if len(chosen) == 1 else "any of the chosen participants"
                raise CatalogueError(f"Sequence {shown(name)} is not listed for {which} in {listing.index_name}.")
        for participant in chosen:
            lacking = [name for name in selection.sequences if name not in on_server[participant]]
            if lacking:
                log.warning("Participant %d has no sequence %s in %s; skipping it for that participant.",
                            participant, listed(lacking), listing.index_name)
        return [(p, tuple(s for s in on_server[p] if s in selection.sequences)) for p in chosen]

    def chosen_cameras(self, selection: Selection, serials: Iterable[str]) -> tuple[str, ...]:
        """``serials`` less the cameras the selection leaves out."""
        return tuple(s for s in serials if selection.cameras is None or s in selection.cameras)


def _as_ids(participants: Iterable[int]) -> tuple[int, ...]:
    values = tuple(participants)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CatalogueError(f"Participant id {shown(value)} is not an integer id such as 388.")
    return values


def _check_frames(frames: PointcloudFrames | int) -> PointcloudFrames:
    if frames == "all":
        return "all"
    values = (frames,) if isinstance(frames, int) else tuple(frames)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(
                f"Point cloud frame {shown(value)} is not a non-negative frame number; use e.g. 0, '0,3,6' or 'all'."
            )
    return tuple(dict.fromkeys(values))
