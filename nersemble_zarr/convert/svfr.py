"""Convert the fetched SVFR images into the store: one group ``svfr/{participant}`` per participant.

The group holds ``images (image, y, x, channel)`` uint8 with ``sequence``, ``timestep`` and ``serial`` along
``image`` (channel: RGB, or RGBA when a participant's PNGs carry alpha). Images of one participant that differ in size are stored top-left in an array of the largest
height and width, zero beyond their own size; ``image_height`` and ``image_width`` (image,) give each one's
size (the group's ``height`` and ``width`` attributes are the array's). Every PNG is decoded and checked
before anything is written; an image is flagged in ``images_converted`` once written, so a rerun resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr

from .. import catalogue, schema, storage
from ..catalogue import ImageKey
from ..frame_codecs import FrameCodec
from ..errors import InputDataError, StoreError
from ..inputs.files import read_limited
from ..inputs.origin import Origin

MAX_PNG_BYTES = 256 * 2**20
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class SvfrSource:
    """The checked images of one participant: keys in catalogue order, their files and sizes (height, width),
    and the channels every one of them has (3: RGB, 4: RGBA)."""

    participant: int
    keys: tuple[ImageKey, ...]
    files: tuple[Path, ...]
    sizes: tuple[tuple[int, int], ...]
    channels: int = 3

    @property
    def height(self) -> int:
        return max(h for h, _ in self.sizes)

    @property
    def width(self) -> int:
        return max(w for _, w in self.sizes)


def read_svfr_image(path: Path) -> np.ndarray:
    """Decode one fetched ``rgb.png`` into (H, W, 3 or 4) uint8, or raise an InputDataError naming the file."""
    import imagecodecs

    origin = Origin.local(path, "SVFR image")
    data = read_limited(path, origin, MAX_PNG_BYTES)
    if not data.startswith(PNG_MAGIC):
        raise origin.error("is not a PNG file")
    try:
        image = imagecodecs.png_decode(data)
    except Exception as error:  # imagecodecs raises its own PngError and others for damaged data
        raise origin.error(f"cannot be decoded ({type(error).__name__}); it is truncated or damaged") from error
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise origin.error(f"holds a {image.dtype} image of shape {image.shape}; expected 8-bit RGB or RGBA")
    return image


def plan_svfr(root: Path, participants: tuple[int, ...] | None = None) -> list[SvfrSource]:
    """Check every image of the chosen participants (None: every one with a folder under ROOT/svfr)."""
    base = Path(root) / catalogue.SVFR
    if participants is None:
        participants = tuple(p for p in catalogue.SVFR_PARTICIPANTS if (base / f"{p:03d}").is_dir())
        if not participants:
            raise InputDataError(f"No participant folders under {base}; run `nersemble-zarr fetch {root} svfr`.")
    catalogue.check_participants(catalogue.SVFR, participants)
    sources = []
    for participant in participants:
        keys = catalogue.svfr_image_keys()[participant]
        files = tuple(base / catalogue.svfr_image_path(participant, key) for key in keys)
        shapes = [read_svfr_image(path).shape for path in files]
        channels = {shape[2] for shape in shapes}
        if len(channels) > 1:
            odd = files[[shape[2] for shape in shapes].index(max(channels))]
            raise Origin.local(odd, "SVFR image").error(
                f"has alpha but other images of participant {participant} do not"
            )
        sources.append(SvfrSource(participant, keys, files, tuple(s[:2] for s in shapes), channels.pop()))
    return sources


def svfr_skeleton(source: SvfrSource, codec: FrameCodec) -> tuple[xr.Dataset, dict]:
    """The Dataset of one participant's group (images as lazy zeros) and its zarr encoding."""
    n, tail = len(source.keys), (source.height, source.width, source.channels)
    coords = {
        schema.SVFR_SEQUENCE: (schema.IMAGE, np.array([k.sequence for k in source.keys], dtype=object)),
        schema.TIMESTEP: (schema.IMAGE, np.array([k.timestep for k in source.keys], dtype=np.int64)),
        schema.SERIAL: (schema.IMAGE, np.array([k.serial for k in source.keys], dtype=object)),
        schema.IMAGE_HEIGHT: (schema.IMAGE, np.array([h for h, _ in source.sizes], dtype=np.int64)),
        schema.IMAGE_WIDTH: (schema.IMAGE, np.array([w for _, w in source.sizes], dtype=np.int64)),
        schema.converted_flag(schema.IMAGES): (schema.IMAGE, np.zeros(n, dtype=bool)),
    }
    images = xr.Variable(
        (schema.IMAGE, schema.Y, schema.X, schema.CHANNEL), da.zeros((n,) + tail, dtype=np.uint8, chunks=(1,) + tail),
        attrs={
            "source": f"{catalogue.SVFR}/{source.participant:03d}/{{sequence}}_{{timestep}}_{{serial}}/rgb.png",
            "units": "8-bit intensity, 0-255",
            "description": "RGB image, top-left; pixels beyond its image_height x image_width are 0",
        },
    )
    attrs = {
        schema.BENCHMARK_ATTR: catalogue.SVFR,
        schema.PARTICIPANT_ATTR: source.participant,
        schema.HEIGHT_ATTR: source.height,
        schema.WIDTH_ATTR: source.width,
        schema.FRAME_CODEC_ATTR: codec.name,
        "same_size": len(set(source.sizes)) == 1,
        "timestep_meaning": "original frame index of the recording",
    }
    encoding = {
        schema.IMAGES: {"chunks": (1,) + tail, "fill_value": 0, **codec.zarr_encoding()},
        schema.converted_flag(schema.IMAGES): {"chunks": (n,)},
    }
    return xr.Dataset({schema.IMAGES: images}, coords=coords, attrs=attrs), encoding


def write_svfr(store: str, source: SvfrSource, codec: FrameCodec) -> tuple[int, int]:
    """Write one participant's images that are not yet flagged; returns (written, skipped)."""
    group = schema.svfr_group(source.participant)
    if storage.group_exists(store, group) and not storage.is_skeleton_complete(storage.open_group(store, group)):
        storage.remove_group(store, group)  # a killed run's half-written skeleton holds no image yet
    if not storage.group_exists(store, group):
        dataset, encoding = svfr_skeleton(source, codec)
        storage.write_skeleton(dataset, store, group, encoding)
        storage.mark_skeleton_complete(store, group)
    _check_matches(store, group, source)
    done = storage.camera_flag(store, group, schema.IMAGES)
    array = storage.open_array(store, f"{group}/{schema.IMAGES}", mode="r+")
    written = 0
    for index, path in enumerate(source.files):
        if done[index]:
            continue
        image = read_svfr_image(path)
        array[index, : image.shape[0], : image.shape[1]] = image
        storage.mark_camera_written(store, group, schema.IMAGES, index)
        written += 1
    storage.mark_converted(store, group)
    return written, len(source.files) - written


def _check_matches(store: str, group: str, source: SvfrSource) -> None:
    """Refuse resuming into a group made from other images (other keys or sizes)."""
    existing = storage.open_dataset(store, group, dask=False)
    keys = list(zip(existing[schema.SVFR_SEQUENCE].values, existing[schema.TIMESTEP].values, existing[schema.SERIAL].values))
    sizes = list(zip(existing[schema.IMAGE_HEIGHT].values, existing[schema.IMAGE_WIDTH].values))
    if [tuple(k) for k in source.keys] != [(str(s), int(t), str(c)) for s, t, c in keys] or list(source.sizes) != [
        (int(h), int(w)) for h, w in sizes
    ]:
        raise StoreError(f"The store's {group} holds other SVFR images than the fetched ones; use a new store.")
