"""Preview pictures of a store: pick the sequence, build the contact sheet or rig plot, write the PNG."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import xarray as xr

from .. import catalogue, schema, storage
from .. import store as store_module
from ..errors import CatalogueError, StoreError
from ..outputs import check_output_file
from .overlay import MAX_POINTS, overlay_points
from .picture import with_labels, write_png
from .rig import rig_picture
from .sheet import check_timestep, contact_sheet


def benchmark_of(participant: int) -> str:
    """The benchmark a participant id belongs to (the benchmarks have no participant in common)."""
    for benchmark in catalogue.ALL_BENCHMARKS:
        if participant in catalogue.participants(benchmark):
            return benchmark
    known = ", ".join(str(p) for b in catalogue.ALL_BENCHMARKS for p in catalogue.participants(b))
    raise CatalogueError(f"Unknown participant {participant}; expected one of {known}.")


def open_sequence(store: str | os.PathLike, participant: int, sequence: str | None = None, *,
                  benchmark: str | None = None, level: int = 1) -> xr.Dataset:
    """The sequence Dataset of ``participant`` of ``benchmark`` (default: the benchmark the id belongs to; the
    dataset is named: its ids overlap the benchmarks') at resolution ``level``; without ``sequence``, its NVS
    sequence or its first mono or dataset sequence with frames in the store (else its first one)."""
    benchmark = benchmark or benchmark_of(participant)
    tree = store_module.open(store)
    if sequence is None and benchmark in ("mono_flame_avatar", schema.DATASET):
        names = [key[2] for key in storage.select_sequences(store, benchmark=benchmark, participants=[participant],
                                                             level=level)]
        if not names:
            at = f" at resolution level {level}" if level > 1 else ""
            raise StoreError(f"The store {store} has no {benchmark} sequence of participant {participant}{at}; "
                             "convert it first.")
        groups = {name: tree[schema.level_group(level, benchmark, participant, name)] for name in names}
        with_frames = [name for name in names if schema.IMAGES in groups[name].dataset]
        sequence = (with_frames or names)[0]
    return store_module.sequence(tree, benchmark, participant, sequence, level=level)


def preview_picture(
    store: str | os.PathLike,
    participant: int,
    sequence: str | None = None,
    timestep: int | None = None,
    *,
    flame_dir: str | os.PathLike | None = None,
    tile_width: int = 275,
    meshes: Any = None,
    task: str = "posed",
    max_dots: int = MAX_POINTS,
    benchmark: str | None = None,
    level: int = 1,
) -> np.ndarray:
    """The contact sheet (H, W, 3) uint8 of every camera at ``timestep`` (default: the first) with captions;
    at most ``max_dots`` overlay points are drawn (0: none).

    For an SVFR participant: every image of the participant, and with ``meshes`` (a submission zip, a
    predictions folder or mapping) the ``task``'s mesh drawn beside each; ``sequence`` and ``timestep`` do
    not apply. ``benchmark`` and ``level`` choose the sequence as ``open_sequence`` does."""
    if (benchmark or benchmark_of(participant)) == catalogue.SVFR:
        if sequence is not None or timestep is not None:
            raise CatalogueError("SVFR images have no sequence or timestep to choose; leave out -s and -t.")
        from .svfr import load_meshes, svfr_sheet

        dataset = store_module.svfr_images(store_module.open(store), participant)
        found = None if meshes is None else load_meshes(meshes, participant, task)
        return with_labels(*svfr_sheet(dataset, found, tile_width=tile_width))
    if meshes is not None:
        raise CatalogueError(f"--meshes draws SVFR meshes; participant {participant} is not an SVFR participant.")
    dataset = open_sequence(store, participant, sequence, benchmark=benchmark, level=level)
    if timestep is None:
        timestep = int(dataset[schema.TIMESTEP].values[0])
    check_timestep(dataset, timestep)
    overlay = overlay_points(dataset, timestep, flame_dir, max_points=max_dots) if max_dots > 0 else None
    sheet = contact_sheet(dataset, timestep, overlay, tile_width=tile_width)
    return with_labels(sheet.pixels, sheet.labels)


def write_preview(store: str | os.PathLike, output: str | os.PathLike, participant: int, **options) -> None:
    """Write the contact sheet of ``preview_picture`` (same options) as PNG to ``output``."""
    check_output_file(output)
    write_png(output, preview_picture(store, participant, **options))


def write_rig_preview(
    store: str | os.PathLike, output: str | os.PathLike, participant: int, sequence: str | None = None, *,
    benchmark: str | None = None, level: int = 1,
) -> None:
    """Write the camera rig plot of a participant's sequence as PNG to ``output``; the head is drawn from the
    first timestep's stored FLAME mesh or point cloud when there is one."""
    check_output_file(output)
    dataset = open_sequence(store, participant, sequence, benchmark=benchmark, level=level)
    head = overlay_points(dataset, int(dataset[schema.TIMESTEP].values[0]))
    write_png(output, rig_picture(dataset, head))
