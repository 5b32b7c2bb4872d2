"""Where a warm ``engine="nersemble"``, ``chunks={}`` frame read spends its time, against the raw read and the
floor of xarray + dask over data already in memory, all measured in one process.

    python -m benchmarks.backend_floor [--store STORE ...] [--reads 200] [--long-timesteps 1118] [--quick] [--rows FILE]

Each round picks a random (written camera, timestep) and reads that frame through every path below, in an order
that reverses from one round to the next; every path must return the raw read's frame. Per path: the best and
the median over the rounds (ms), after one read of each path that is left out.

- ``raw``: the chunk's bytes read and decompressed by hand (``benchmarks.raw_chunks``);
- ``nersemble {}``: ``xr.open_datatree(STORE, engine="nersemble", chunks={})``, then
  ``.images.sel(serial=...).isel(timestep=...).values`` (the read path of the benchmark table);
- ``nersemble {} inline``: the same opened with ``inline_array=True`` (xarray's option, passed to dask's
  ``from_array``);
- ``nersemble {} sync``: the same selection's dask array computed with ``scheduler="synchronous"`` (an
  argument of the call, not the global configuration);
- ``nersemble {} coords loaded``: ``nersemble {}`` with the three per-camera coordinates of ``images``
  (``alpha_converted``, ``images_converted``, ``split``: dask arrays, as both engines open them) read into
  memory first, so that ``.sel(serial=...)`` does not index them through dask;
- ``nersemble None``: opened with ``chunks=None`` (no dask);
- ``floor``: the same selection on a dask array that xarray makes, as ``open_datatree`` does, from a lazily
  indexed array over one frame held in memory (every chunk a view of it), with the same shape, dims, dask chunks
  and ``serial`` index; ``floor inline`` with ``inline_array=True``; ``floor + coords`` with the store's three
  per-camera coordinates of ``images`` (dask arrays) as well;
- ``nersemble {} one call`` and ``floor one call``: ``.isel(serial=..., timestep=...)``, one indexing call (what the
  README's ``.sel(serial=..., timestep=...)`` makes) instead of two; ``... inline one call`` both.

Without ``--store``, a full-resolution synthetic sequence (2 cameras x ``--frames``) is generated and converted
with zstd and lz4. Each store is measured as it is and as a copy whose metadata says the sequence has
``--long-timesteps`` timesteps (participant 388's real length; the chunks beyond the written frames are absent
and never read): dask's work per read grows with the number of chunks of the array. ``--rows`` appends, per
store, the rows of ``ROWS`` (best times against the raw read) in the benchmark table's format.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.options import parse_benchmark_args
from benchmarks.read_paths import GROUP, PARTICIPANT, Read, open_raw, open_xarray
from benchmarks.table import Row, append_rows
from nersemble_zarr import catalogue, schema

QUICK = {"reads": 60}
TARGET = 2.0  # the target: a chunks={} read within 2x of the raw read


def open_floor(store: Path, inline_array: bool = False, coordinates: bool = False, one_call: bool = False) -> Read:
    """The ``floor`` paths: xarray + dask over one in-memory frame, shaped and chunked like the store's images."""
    import xarray as xr
    from xarray.backends import BackendArray
    from xarray.core import indexing

    stored = _images(store)
    frame = np.random.default_rng(0).integers(0, 256, stored.shape[2:], dtype=np.uint8)

    class InMemoryFrames(BackendArray):
        """Every frame of the array is ``frame`` (a view of it, no copy)."""

        def __init__(self) -> None:
            self.shape, self.dtype = stored.shape, np.dtype(np.uint8)

        def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
            return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC,
                                                      lambda k: np.broadcast_to(frame, self.shape)[k])

    variable = xr.Variable(stored.dims, indexing.LazilyIndexedArray(InMemoryFrames()))
    variable = variable.chunk(dict(zip(stored.dims, stored.data.chunksize)),
                              from_array_kwargs={"name": f"floor-{inline_array}", "inline_array": inline_array})
    array = xr.DataArray(variable, coords={schema.SERIAL: stored[schema.SERIAL].values})
    if coordinates:
        array = array.assign_coords({name: stored[name] for name in stored.coords if name not in stored.indexes})
    if one_call:
        return _one_call(array)
    return lambda serial, position: array.sel(serial=serial).isel(timestep=position).values


def _one_call(images) -> Read:
    """``images.isel(serial=..., timestep=...)``: one indexing call, as ``.sel(serial=..., timestep=...)`` makes."""
    index_of = {str(serial): index for index, serial in enumerate(images[schema.SERIAL].values)}
    return lambda serial, position: images.isel(serial=index_of[serial], timestep=position).values


def open_synchronous(store: Path) -> Read:
    """``nersemble {}`` computed by dask's synchronous scheduler (an argument of the call, on the dask array, as
    ``.values`` computes it)."""
    images = _images(store)
    return lambda serial, position: images.sel(serial=serial).isel(timestep=position).data.compute(
        scheduler="synchronous")


def open_coordinates_loaded(store: Path) -> Read:
    """``nersemble {}`` with the non-index coordinates of ``images`` read into memory first (by the user)."""
    images = _images(store)
    images = images.assign_coords({name: images[name].compute() for name in images.coords
                                   if name not in images.indexes})
    return lambda serial, position: images.sel(serial=serial).isel(timestep=position).values


def _images(store: Path, inline_array: bool = False):
    import xarray as xr

    tree = xr.open_datatree(store, engine="nersemble", chunks={}, inline_array=inline_array)
    return tree[GROUP].to_dataset().images


PATHS: dict[str, Callable[[Path], Read]] = {
    "raw": lambda store: open_raw(store, False),
    "nersemble {}": lambda store: open_xarray(store, {}, "nersemble"),
    "nersemble {} inline": lambda store: open_xarray(store, {}, "nersemble", inline_array=True),
    "nersemble {} sync": open_synchronous,
    "nersemble {} coords loaded": open_coordinates_loaded,
    "nersemble None": lambda store: open_xarray(store, None, "nersemble"),
    "floor": open_floor,
    "floor inline": lambda store: open_floor(store, inline_array=True),
    "floor + coords": lambda store: open_floor(store, coordinates=True),
    "nersemble {} one call": lambda store: _one_call(_images(store)),
    "floor one call": lambda store: open_floor(store, one_call=True),
    "nersemble {} inline one call": lambda store: _one_call(_images(store, inline_array=True)),
    "floor inline one call": lambda store: open_floor(store, inline_array=True, one_call=True),
}


def written_frames(store: Path) -> tuple[list[str], int]:
    """The cameras flagged written and the number of timesteps of the store."""
    import zarr

    group = zarr.open_group(store, path=GROUP, mode="r")
    serials = [str(s) for s in group[schema.SERIAL][:]]
    flags = group[schema.converted_flag(schema.IMAGES)][:]
    return [serial for serial, flag in zip(serials, flags) if flag], group[schema.TIMESTEP].shape[0]


def measure(store: Path, reads: int, seed: int = 0, timesteps: int | None = None) -> dict[str, list[float]]:
    """Milliseconds of each path's reads of the same random frames (picked among the first ``timesteps``, default
    all); raises RuntimeError when a path returns another frame than the raw read."""
    readers = {name: opener(store) for name, opener in PATHS.items()}
    serials, stored = written_frames(store)
    stored = min(stored, timesteps or stored)
    rng = np.random.default_rng(seed)
    times: dict[str, list[float]] = {name: [] for name in readers}
    for round_ in range(reads + 1):
        serial, position = serials[int(rng.integers(len(serials)))], int(rng.integers(stored))
        order = list(readers) if round_ % 2 == 0 else list(reversed(readers))
        frames = {}
        for name in order:
            start = time.perf_counter()
            frames[name] = readers[name](serial, position)
            seconds = time.perf_counter() - start
            if round_:  # the first round reads each path once, untimed
                times[name].append(1000 * seconds)
        for name, frame in frames.items():
            if not name.startswith("floor") and not np.array_equal(frame, frames["raw"]):
                raise RuntimeError(f"{name} read another frame than the raw read at {serial}, {position} of {store}")
    return times


def long_copy(store: Path, target: Path, timesteps: int) -> Path:
    """A copy of ``store`` (chunk files hard-linked) whose arrays along ``timestep`` say they are ``timesteps``
    long, in their own and in the consolidated metadata; the frames beyond the written ones are absent."""
    import json

    def link(source: str, destination: str) -> None:
        try:
            os.link(source, destination)
        except OSError:
            shutil.copy2(source, destination)

    def lengthen(node) -> None:
        if isinstance(node, dict):
            if node.get("node_type") == "array" and schema.TIMESTEP in (node.get("dimension_names") or []):
                node["shape"][node["dimension_names"].index(schema.TIMESTEP)] = timesteps
            for value in node.values():
                lengthen(value)

    shutil.copytree(store, target, copy_function=link)
    for metadata in target.rglob("zarr.json"):
        node = json.loads(metadata.read_text(encoding="utf-8"))
        os.unlink(metadata)  # a hard link to the original's metadata: write a new file instead
        lengthen(node)
        metadata.write_text(json.dumps(node), encoding="utf-8")
    return target


def report(label: str, times: dict[str, list[float]]) -> list[str]:
    """Lines of the table of one store: best and median per path, and the floor's arithmetic."""
    best = {name: min(values) for name, values in times.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    raw = best["raw"]
    lines = [label, f"    {'path':<28}{'best ms':>9}{'median ms':>11}{'best / raw':>12}"]
    lines += [f"    {name:<28}{best[name]:9.2f}{median[name]:11.2f}{best[name] / raw:12.2f}" for name in times]
    for ours, floor in (("nersemble {}", "floor"), ("nersemble {} inline", "floor inline"),
                        ("nersemble {} coords loaded", "floor"), ("nersemble {} one call", "floor one call"),
                        ("nersemble {} inline one call", "floor inline one call")):
        limit = raw + best[floor]
        lines.append(f"    {ours}: raw + {floor} = {limit:.2f} ms = {limit / raw:.2f}x raw (target {TARGET:g}x = "
                     f"{TARGET * raw:.2f} ms); ours - (raw + {floor}) = {best[ours] - limit:+.2f} ms")
    return lines


# The rows for ``--rows``: each path against the raw read, with the floor it is held against.
ROWS = {"nersemble {}": "floor", "nersemble {} inline one call": "floor inline one call", "nersemble None": None}


def rows(label: str, times: dict[str, list[float]]) -> list[Row]:
    """Rows of the benchmark table for one store: the paths of ``ROWS`` against the raw read (best times)."""
    import resource

    best = {name: min(values) for name, values in times.items()}
    raw, peak = best["raw"], f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    table = []
    for name, floor in ROWS.items():
        limit = (f"floor {best[floor]:.2f} ms; raw + floor = {(raw + best[floor]) / raw:.2f}x raw; ours = "
                 f"{best[name] / raw:.2f}x raw (target <= {TARGET:g}x)" if floor else
                 f"ours = {best[name] / raw:.2f}x raw (target <= {TARGET:g}x)")
        table.append(Row("backend_floor", f"warm read, best of the rounds: {name}, {label}", f"{best[name]:.2f} ms",
                         f"{raw:.2f} ms (raw read)", raw / best[name], limit, peak))
    return table


def _synthetic_stores(work: Path, frames: int) -> list[Path]:
    """A full-resolution synthetic sequence of 2 cameras x ``frames``, converted with zstd and with lz4."""
    from nersemble_zarr.convert import convert
    from nersemble_zarr.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(scale=1.0, n_frames=frames, nvs_participants=(PARTICIPANT,),
                             nvs_serials=catalogue.NVS_TRAIN_SERIALS[:2], mono_participants=(),
                             svfr_participants=(), n_points=1000)
    generate(work / "root", config, workers=os.cpu_count() or 1)
    stores = []
    for codec in ("zstd", "lz4"):
        stores.append(work / f"{codec}.zarr")
        convert(work / "root", stores[-1], benchmarks=("nvs",), codec=codec, workers=2)
    return stores


def _load() -> str:
    with open("/proc/loadavg", encoding="ascii") as file:
        return file.read().split()[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, action="append", help="a converted store to read (default: generate)")
    parser.add_argument("--frames", type=int, default=16, help="frames per camera of the generated stores")
    parser.add_argument("--reads", type=int, default=200, help="rounds (one read of every path each)")
    parser.add_argument("--long-timesteps", type=int, default=catalogue.NVS_N_FRAMES[PARTICIPANT],
                        help="timesteps of the long copy (0: none)")
    args = parse_benchmark_args(parser, QUICK, argv)
    with tempfile.TemporaryDirectory(prefix="backend-floor-") as tmp:
        work = Path(tmp)
        stores = args.store or _synthetic_stores(work, args.frames)
        for index, store in enumerate(stores):
            variants = [(store, "as stored")]
            if args.long_timesteps:
                copy = long_copy(store, work / f"long-{index}.zarr", args.long_timesteps)
                variants.append((copy, f"metadata of {args.long_timesteps} timesteps"))
            _, written = written_frames(store)
            for path, what in variants:
                import zarr

                shape = zarr.open_array(path, path=f"{GROUP}/{schema.IMAGES}", mode="r").shape
                before, start = _load(), time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
                times = measure(path, args.reads, timesteps=written)
                label = (f"{store.name}, {what}: images {shape} ({shape[0] * shape[1]} dask chunks), {args.reads} "
                         f"rounds, {start}, load {before} -> {_load()}")
                print("\n".join(report(label, times)), flush=True)
                append_rows(args.rows, rows(f"{store.stem}, {shape[0] * shape[1]} chunks", times))


if __name__ == "__main__":
    main()
