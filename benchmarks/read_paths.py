"""Every documented way to read one random frame, as ``open(...) -> read(serial, position)``.

Each opener does what a user's script does before its first read (open the store, select the sequence,
build the dataset); ``read`` returns the (H, W, 3) uint8 frame of camera ``serial`` at timestep position
``position`` (the FrameDataset paths return the item's image, which carries alpha along).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from nersemble_zarr import schema

Read = Callable[[str, int], np.ndarray]
PARTICIPANT, SEQUENCE = 388, "GLASSES"
GROUP = f"nvs/{PARTICIPANT}/{SEQUENCE}"


def open_xarray(store: Path, chunks, engine: str = "zarr", **options) -> Read:
    """The README's example: ``xr.open_datatree(STORE, engine=..., chunks=...)``: ``"zarr"`` without this
    package, ``"nersemble"`` with its backend (found through its entry point, not imported here); ``options``
    go to ``open_datatree`` too (``inline_array=True``)."""
    import xarray as xr

    dataset = xr.open_datatree(store, engine=engine, chunks=chunks, **options)[GROUP].to_dataset()
    return lambda serial, position: dataset.images.sel(serial=serial).isel(timestep=position).values


def open_store_frame(store: Path, dask: bool) -> Read:
    """``nersemble_zarr.store.frame`` on ``store.open(STORE, dask=...)`` (frame takes the original timestep)."""
    from nersemble_zarr import store as nz

    dataset = nz.sequence(nz.open(store, dask=dask), "nvs", PARTICIPANT)
    timesteps = dataset.timestep.values
    return lambda serial, position: nz.frame(dataset, serial, int(timesteps[position]))


def open_frame_dataset(store: Path, uint8: bool) -> Read:
    """``FrameDataset`` item access (every camera, both splits); the item's image back as (H, W, 3)."""
    import torch

    from nersemble_zarr.torch_dataset import FrameDataset

    dataset = FrameDataset(store, "nvs", participants=[PARTICIPANT], split=None,
                           dtype=torch.uint8 if uint8 else torch.float32)
    serials = dataset.sequences[0].serials
    item_of = {(serials[s], int(t)): i for i, (_, s, t) in enumerate(dataset.index.tolist())}

    def read(serial: str, position: int) -> np.ndarray:
        image = dataset[item_of[serial, position]]["image"]
        return image.permute(1, 2, 0).numpy()

    return read


def open_zarr(store: Path) -> Read:
    """Straight from the zarr array: ``images[serial_index, position]``."""
    import zarr

    images = zarr.open_array(store, path=f"{GROUP}/{schema.IMAGES}", mode="r")
    index_of = _serial_indices(store)
    return lambda serial, position: images[index_of[serial], position]


def open_raw(store: Path, with_alpha: bool) -> Read:
    """The raw limit: the chunk's bytes read and decompressed by hand (``with_alpha``: the alpha chunk too,
    the limit of a FrameDataset item)."""
    from benchmarks.raw_chunks import RawChunkReader

    index_of = _serial_indices(store)
    images = RawChunkReader(store / GROUP / schema.IMAGES)
    alpha = RawChunkReader(store / GROUP / schema.ALPHA) if with_alpha else None

    def read(serial: str, position: int) -> np.ndarray:
        index = index_of[serial]
        if alpha is not None:
            alpha.read(index, position)
        return images.read(index, position)

    return read


def _serial_indices(store: Path) -> dict[str, int]:
    """Camera serial -> index along the store's ``serial`` dimension."""
    import zarr

    serials = zarr.open_array(store, path=f"{GROUP}/{schema.SERIAL}", mode="r")[:]
    return {str(serial): index for index, serial in enumerate(serials)}


def open_opencv(videos: Callable[[str], Path]) -> Read:
    """The official toolkit's way: one OpenCV capture per camera (opened on its first read and kept open),
    ``CAP_PROP_POS_FRAMES`` seek, read, BGR -> RGB."""
    import cv2

    captures: dict[str, cv2.VideoCapture] = {}

    def read(serial: str, position: int) -> np.ndarray:
        if serial not in captures:
            captures[serial] = cv2.VideoCapture(str(videos(serial)))
        capture = captures[serial]
        capture.set(cv2.CAP_PROP_POS_FRAMES, position)
        ok, frame = capture.read()
        if not ok:
            raise RuntimeError(f"OpenCV could not read frame {position} of {videos(serial)}")
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    return read


# name -> (label for the table, opener taking (store, videos-of-serial)); "raw" is the limit, "opencv" the baseline.
READ_PATHS: dict[str, tuple[str, Callable[[Path, Callable[[str], Path]], Read]]] = {
    "nersemble_dask": ('xr.open_datatree(engine="nersemble", chunks={}) .sel/.isel .values',
                       lambda store, videos: open_xarray(store, {}, "nersemble")),
    "nersemble_nodask": ('engine="nersemble" with chunks=None', lambda store, videos: open_xarray(store, None, "nersemble")),
    "xarray_dask": ('README: xr.open_datatree(engine="zarr", chunks={}) .sel/.isel .values',
                    lambda store, videos: open_xarray(store, {})),
    "xarray_nodask": ('engine="zarr" with chunks=None', lambda store, videos: open_xarray(store, None)),
    "frame_dask": ("store.frame on store.open()", lambda store, videos: open_store_frame(store, True)),
    "frame_nodask": ("store.frame on store.open(dask=False)", lambda store, videos: open_store_frame(store, False)),
    "frame_dataset": ("FrameDataset[i] (float32, image + alpha)", lambda store, videos: open_frame_dataset(store, False)),
    "frame_dataset_uint8": ("FrameDataset[i] (uint8, image + alpha)",
                            lambda store, videos: open_frame_dataset(store, True)),
    "zarr": ("zarr images[serial_index, t]", lambda store, videos: open_zarr(store)),
    "raw": ("raw limit: pread chunk + decompress", lambda store, videos: open_raw(store, False)),
    "raw_alpha": ("raw limit, image + alpha chunks", lambda store, videos: open_raw(store, True)),
    "opencv": ("OpenCV CAP_PROP_POS_FRAMES seek + read (official)", lambda store, videos: open_opencv(videos)),
}
# The raw limit each path is held against: a FrameDataset item reads the alpha chunk as well.
LIMIT_OF = {name: "raw_alpha" if name.startswith("frame_dataset") else "raw" for name in READ_PATHS}
