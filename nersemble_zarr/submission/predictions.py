"""Find the predicted videos in what the user hands in, and check them against the submission's spec.

Accepted predictions:

- a zarr store path or an xarray DataTree laid out like a converted store: groups ``nvs/388/GLASSES`` with
  ``images`` (serial, timestep, y, x, channel); groups and cameras outside the submission are ignored;
- a mapping ``(participant, sequence, serial) -> frames``, the frames a numpy, dask or zarr array
  (timestep, y, x, channel), an xarray DataArray (with those dims, or a ``serial`` dim holding the camera)
  or a Dataset with an ``images`` variable;
- a folder of images ``PRED/{participant:03d}/{sequence}/cam_{serial}/{frame:05d}.png`` (or .jpg), one file
  per frame, numbered 0, 1, 2, ... or by the sequence's original frame indices (a gap is refused);
- a submission zip of ``{participant:03d}/{sequence}/cam_{serial}.mp4`` videos (each entry is probed here).

Frames are uint8 (0..255) or float (0..1) RGB at the benchmark's size. Only metadata is read here (and the
first image of each image folder, for its size).
"""

from __future__ import annotations

import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import catalogue, schema
from ..errors import StoreError, SubmissionError
from ..units import listed
from .expected import ExpectedVideo, SubmissionSpec, VideoKey
from .folders import visible_entries
from .frames import check_dtype
from .sources import ArrayVideo, FrameSource, ImageFolderVideo, StoredVideo, ZipVideo, read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_FRAME_NAME = re.compile(r"^(\d+)\.(png|jpe?g)$", re.IGNORECASE)
FOLDER_LAYOUT = "PRED/{participant:03d}/{sequence}/cam_{serial}/{frame:05d}.png"


def collect_predictions(predictions: Any, spec: SubmissionSpec, *, partial: bool = False) -> list[FrameSource]:
    """The predicted videos in submission order, each checked for size, dtype and frame count.

    Without ``partial`` every video of the spec must be there; the error lists what is missing.
    """
    found = find_videos(predictions, spec)
    expected = spec.by_key()
    for key, source in found.items():
        check_source(source, expected[key], spec)
    if isinstance(predictions, (str, os.PathLike)) and (Path(predictions) / "zarr.json").is_file():
        refuse_cameras_without_frames(Path(predictions), spec, found)
    missing = [video.entry for video in spec.videos if video.key not in found]
    if not found:
        raise SubmissionError(f"No {spec.benchmark} prediction was found in {_describe(predictions)}.")
    if missing and not partial:
        raise SubmissionError(
            f"{len(missing)} of {len(spec.videos)} {spec.benchmark} videos are missing from the predictions "
            f"({listed(missing)}); add them, or pass --partial to export a subset."
        )
    return [found[video.key] for video in spec.videos if video.key in found]


def find_videos(predictions: Any, spec: SubmissionSpec) -> dict[VideoKey, FrameSource]:
    """Every video of ``spec`` found in ``predictions``, unchecked (``check_source`` checks one)."""
    if _is_xarray(predictions, "DataTree"):  # before Mapping: a DataTree is one too
        return _from_tree(predictions, spec)
    if isinstance(predictions, Mapping):
        return _from_mapping(predictions, spec)
    if isinstance(predictions, (str, os.PathLike)):
        path = Path(predictions)
        if path.is_file() and zipfile.is_zipfile(path):
            return _from_zip(path, spec)
        if not path.is_dir():
            raise SubmissionError(
                f"Predictions {path} should be a zarr store, a folder of images or a submission zip; it is none."
            )
        if (path / "zarr.json").is_file():
            direct = _from_frame_arrays(path, spec)
            return direct if direct is not None else _from_tree(_open_store(path), spec)
        return _from_image_folder(path, spec)
    raise SubmissionError(
        f"Predictions of type {type(predictions).__name__} are not supported; pass a zarr store path, an xarray "
        "DataTree, a mapping (participant, sequence, serial) -> frames, or a folder of images."
    )


def _is_xarray(value: Any, kind: str) -> bool:
    """Whether ``value`` is an xarray ``kind`` (DataTree, Dataset, DataArray), without importing xarray: when
    the caller never imported it, the value cannot be one."""
    xarray = sys.modules.get("xarray")
    return xarray is not None and isinstance(value, getattr(xarray, kind))


def _open_store(path: Path):
    import warnings

    from .. import storage

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr's notes on consolidated metadata and string dtypes
            return storage.open_tree(path, dask=False, zarr_format=None)
    except StoreError as error:
        raise SubmissionError(f"Predictions store {path} cannot be opened: {error}") from error


# ---------------------------------------------------------------- store or DataTree
def _from_tree(tree, spec: SubmissionSpec) -> dict[VideoKey, FrameSource]:
    found: dict[VideoKey, FrameSource] = {}
    for video in spec.videos:
        group = schema.sequence_group(spec.benchmark, video.participant, video.sequence)
        try:
            node = tree[group]
        except KeyError:
            continue
        if schema.IMAGES not in node.dataset:
            raise SubmissionError(f"Prediction group {group} has no {schema.IMAGES!r} variable.")
        images = node.dataset[schema.IMAGES]
        if schema.SERIAL not in images.dims or schema.SERIAL not in images.coords:
            raise SubmissionError(
                f"{schema.IMAGES!r} of prediction group {group} needs a {schema.SERIAL!r} dimension with camera "
                f"serials as coordinate; found dims {images.dims}."
            )
        if video.serial in _serials(images):
            found[video.key] = _array_video(images, video)
    return found


# Attributes by which xarray would decode stored values into others (CF conventions): such arrays go through it.
_DECODED_ATTRS = ("_FillValue", "missing_value", "scale_factor", "add_offset", "units", "calendar", "dtype")
_FRAME_DIMS = (schema.SERIAL, schema.TIMESTEP, schema.Y, schema.X, schema.CHANNEL)


def _from_frame_arrays(path: Path, spec: SubmissionSpec) -> dict[VideoKey, FrameSource] | None:
    """The videos of a local zarr v3 predictions store read straight from its arrays (no xarray), when every
    predicted group holds ``images`` as uint8 (serial, timestep, y, x, channel) in chunks of one frame, with a
    ``serial`` array and no attribute xarray would decode by; ``None`` otherwise (then the store is read through xarray, whose
    messages name what is wrong)."""
    import zarr

    try:
        root = zarr.open_group(path, mode="r", zarr_format=3, use_consolidated=False)
    except Exception:  # not zarr v3, or unreadable: xarray's path says which
        return None
    found: dict[VideoKey, FrameSource] = {}
    groups: dict[str, list[str] | None] = {}
    for video in spec.videos:
        group_path = schema.sequence_group(spec.benchmark, video.participant, video.sequence)
        if group_path not in groups:
            groups[group_path] = _camera_serials(root, group_path)
            if groups[group_path] is False:
                return None
        serials = groups[group_path]
        if serials is None or video.serial not in serials:
            continue
        images = root[f"{group_path}/{schema.IMAGES}"]
        found[video.key] = StoredVideo(video.entry, str(path), images.path, serials.index(video.serial),
                                       int(images.shape[1]), tuple(int(n) for n in images.shape[2:]),
                                       np.dtype(images.dtype))
    return found


def _camera_serials(root, group_path: str) -> list[str] | None | bool:
    """The camera serials of a predicted group whose frames can be read directly, None when the store has no
    such group, False when the group is there but not of the plain layout (``_from_frame_arrays``)."""
    try:
        group = root[group_path]
    except KeyError:
        return None
    try:
        images, serial = group[schema.IMAGES], group[schema.SERIAL]
    except KeyError:
        return False
    plain = (
        all(hasattr(node, "dtype") for node in (images, serial))  # arrays, not groups
        and tuple(images.metadata.dimension_names or ()) == _FRAME_DIMS
        and np.dtype(images.dtype) == np.uint8
        and tuple(images.chunks[:2]) == (1, 1)  # one frame per chunk: a frame read decodes no other frame
        and not any(name in images.attrs for name in _DECODED_ATTRS)
        and tuple(serial.metadata.dimension_names or ()) == (schema.SERIAL,)
        and serial.shape[0] == images.shape[0]
    )
    return [str(s) for s in serial[...]] if plain else False


def refuse_cameras_without_frames(path: Path, spec: SubmissionSpec, found: Mapping[VideoKey, FrameSource]) -> None:
    """Refuse a predicted camera of which the store holds no frame: a converted store's hold-out cameras
    (absent from its ``video_serials``), or a camera none of whose chunks was ever written (it would encode as
    an all-black video)."""
    import zarr

    for participant, sequence, serial in found:
        group = zarr.open_group(path, path=schema.sequence_group(spec.benchmark, participant, sequence), mode="r")
        recorded = group.attrs.get(schema.VIDEO_SERIALS_ATTR)
        if recorded is not None:
            empty = serial not in recorded
        else:
            empty = not _has_chunks(group[schema.IMAGES], _serials_of(group).index(serial))
        if empty:
            raise SubmissionError(
                f"Predictions {path} hold no frame of camera {serial} ({participant:03d}/{sequence}): its images "
                "were never written (a converted store has no frames of the hold-out cameras), so the video would "
                "be black; write your model's renders of that camera into the predictions."
            )


def _serials_of(group) -> list[str]:
    return [str(serial) for serial in group[schema.SERIAL][...]]


def _has_chunks(array, index: int) -> bool:
    """Whether any chunk (or shard) of position ``index`` along the first axis is stored; True when a chunk
    spans several positions (then absence cannot be told apart per position)."""
    from zarr.core.sync import sync

    if (array.shards or array.chunks)[0] != 1:
        return True
    encoding = array.metadata.chunk_key_encoding
    prefix = f"{array.store_path.path}/{encoding.encode_chunk_key((index,))}{encoding.separator}".lstrip("/")

    async def first_key():
        async for key in array.store_path.store.list_prefix(prefix):
            return key
        return None

    return sync(first_key()) is not None


# ---------------------------------------------------------------- mapping of arrays
def _from_mapping(predictions: Mapping, spec: SubmissionSpec) -> dict[VideoKey, FrameSource]:
    expected = spec.by_key()
    found: dict[VideoKey, FrameSource] = {}
    for raw_key, value in predictions.items():
        key = _normalise_key(raw_key)
        if key not in expected:
            raise SubmissionError(f"Prediction key {raw_key!r} is refused: {_not_in_submission(spec, key)}.")
        if key in found:
            raise SubmissionError(f"Predictions hold {expected[key].entry} twice (keys differ only in spelling).")
        found[key] = _array_video(value, expected[key])
    return found


def _normalise_key(key: Any) -> VideoKey:
    if not (isinstance(key, tuple) and len(key) == 3):
        raise SubmissionError(f"Prediction key {key!r} should be a tuple (participant, sequence, serial).")
    participant, sequence, serial = key
    try:
        participant = int(participant)
    except (TypeError, ValueError) as error:
        raise SubmissionError(
            f"Prediction key {key!r} has participant {participant!r}; expected an integer id."
        ) from error
    return participant, str(sequence), str(serial)


def _array_video(value: Any, video: ExpectedVideo) -> ArrayVideo:
    """Wrap an array-like holding one camera's frames as (timestep, y, x, channel)."""
    if _is_xarray(value, "Dataset"):
        if schema.IMAGES not in value:
            raise SubmissionError(f"The Dataset given for {video.entry} has no {schema.IMAGES!r} variable.")
        value = value[schema.IMAGES]
    time_chunks = None
    if _is_xarray(value, "DataArray"):
        value = _camera_of(value, video)
        frame_dims = (schema.TIMESTEP, schema.Y, schema.X, schema.CHANNEL)
        if set(value.dims) == set(frame_dims):
            value = value.transpose(*frame_dims)
        preferred = value.encoding.get("preferred_chunks", {}).get(value.dims[0]) if value.ndim else None
        if value.chunks is not None:
            time_chunks = tuple(value.chunks[0])
        elif preferred:
            time_chunks = _regular_chunks(value.shape[0], int(preferred))
    elif not (hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "__getitem__")):
        raise SubmissionError(
            f"Frames for {video.entry} are a {type(value).__name__}; expected a numpy, dask or xarray array."
        )
    elif getattr(value, "chunks", None) is not None and not isinstance(value, np.ndarray):
        first = value.chunks[0]  # dask: sizes of every chunk along time; zarr: one regular chunk size
        time_chunks = _regular_chunks(value.shape[0], first) if isinstance(first, int) else tuple(first)
    if len(value.shape) != 4:
        raise SubmissionError(
            f"Frames for {video.entry} have shape {tuple(value.shape)}; expected (frames, height, width, 3)."
        )
    return ArrayVideo(video.entry, value, time_chunks)


def _camera_of(images, video: ExpectedVideo):
    """Select ``video.serial`` from a DataArray with a serial dimension (others pass through)."""
    if schema.SERIAL not in images.dims:
        return images
    serials = _serials(images)
    if video.serial not in serials:
        raise SubmissionError(
            f"The frames given for {video.entry} have a {schema.SERIAL!r} dimension without camera {video.serial}."
        )
    return images.isel({schema.SERIAL: serials.index(video.serial)})


def _serials(images) -> list[str]:
    """Camera serials of a DataArray's serial coordinate as str (stores may hold numpy StringDType)."""
    if schema.SERIAL not in images.coords:
        return []
    return [str(serial) for serial in images.coords[schema.SERIAL].values]


def _regular_chunks(length: int, chunk: int) -> tuple[int, ...]:
    return tuple(min(chunk, length - start) for start in range(0, length, chunk))


# ---------------------------------------------------------------- folder of images
def _from_image_folder(root: Path, spec: SubmissionSpec) -> dict[VideoKey, FrameSource]:
    expected = spec.by_key()
    found: dict[VideoKey, FrameSource] = {}
    for participant_dir in _visible(root):
        participant = _participant_of(participant_dir, spec)
        for sequence_dir in _visible(participant_dir):
            for camera_dir in _visible(sequence_dir):
                key = (participant, sequence_dir.name, camera_dir.name.removeprefix("cam_"))
                if not camera_dir.name.startswith("cam_") or key not in expected:
                    raise SubmissionError(
                        f"{camera_dir} is not part of the {spec.benchmark} submission "
                        f"({_not_in_submission(spec, key)}); expected folders {FOLDER_LAYOUT}."
                    )
                numbered = _frame_files(camera_dir)
                files = tuple(numbered.values())
                shape = read_image(files[0]).shape if files else (spec.height, spec.width, 3)
                found[key] = ImageFolderVideo(expected[key].entry, files, shape, tuple(numbered))
    return found


def _visible(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise SubmissionError(f"{folder} should be a folder; expected the layout {FOLDER_LAYOUT}.")
    return visible_entries(folder)


def _participant_of(folder: Path, spec: SubmissionSpec) -> int:
    participants = {video.participant for video in spec.videos}
    name = folder.name
    if not (name.isdigit() and int(name) in participants and name == f"{int(name):03d}"):
        raise SubmissionError(
            f"{folder} is not a {spec.benchmark} participant folder; expected one of "
            f"{', '.join(f'{p:03d}' for p in sorted(participants))} (layout {FOLDER_LAYOUT})."
        )
    return int(name)


def _frame_files(folder: Path) -> dict[int, Path]:
    """The frame images of ``folder`` by the number their name gives, in numeric order."""
    numbered: dict[int, Path] = {}
    for path in _visible(folder):
        match = _FRAME_NAME.match(path.name)
        if not match or not path.is_file():
            raise SubmissionError(
                f"{path} is not a frame image; name frames by their index, e.g. 00000.png, 00001.png (PNG or JPEG)."
            )
        index = int(match.group(1))
        if index in numbered:
            raise SubmissionError(f"{path} and {numbered[index].name} both claim frame {index} in {folder}.")
        numbered[index] = path
    return {index: numbered[index] for index in sorted(numbered)}


# ---------------------------------------------------------------- submission zip
def _from_zip(path: Path, spec: SubmissionSpec) -> dict[VideoKey, FrameSource]:
    from ..errors import InputDataError
    from ..video import probe
    from .validator import max_video_bytes
    from .zipsafety import entry_copy, open_zip, unsafe_entry

    expected = spec.by_entry()
    with open_zip(path) as archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
    found: dict[VideoKey, FrameSource] = {}
    for info in infos:
        reason = unsafe_entry(info)
        if reason is not None:
            raise SubmissionError(f"{path}: {reason}")
        video = expected.get(info.filename)
        if video is None:
            raise SubmissionError(
                f"Entry {info.filename!r} of {path} is not a {spec.benchmark} video; "
                "a submission holds only {participant:03d}/{sequence}/cam_{serial}.mp4 videos."
            )
        cap = max_video_bytes(video.n_frames or 100_000, spec.width, spec.height)
        with entry_copy(path, info.filename, cap) as copy:
            try:
                found_info = probe(copy)
            except InputDataError as error:
                raise SubmissionError(f"Entry {info.filename!r} of {path} is not a readable video.") from error
        shape = (found_info.height, found_info.width, 3)
        found[video.key] = ZipVideo(info.filename, path, found_info.n_frames, shape, cap)
    return found


# ---------------------------------------------------------------- checks and messages
def check_source(source: FrameSource, video: ExpectedVideo, spec: SubmissionSpec) -> None:
    """Refuse a predicted video whose frame size, dtype or frame count differs from what ``spec`` expects."""
    if isinstance(source, ArrayVideo):
        shape = tuple(source.data.shape[1:])
        check_dtype(source.data.dtype, video.entry)
    else:
        shape = source.shape
        if isinstance(source, StoredVideo):
            check_dtype(source.dtype, video.entry)
    if isinstance(source, ImageFolderVideo):
        check_numbering(source, video)
    if shape != (spec.height, spec.width, 3):
        raise SubmissionError(
            f"Frames of {video.entry} have shape {shape} (height, width, channels); "
            f"expected ({spec.height}, {spec.width}, 3) RGB at {spec.width}x{spec.height}; for frames of "
            "another size (previews, the synthetic benchmark) pass --resolution WIDTHxHEIGHT (and --partial "
            "for a subset of the videos)."
        )
    if video.n_frames is None:
        raise SubmissionError(
            f"The frame count of {video.participant:03d}/{video.sequence} is unknown; "
            "give metadata or a store that holds this sequence."
        )
    if source.n_frames != video.n_frames:
        hint = "; give the fetched folder (--root ROOT) or the store (--store STORE) the predictions follow" \
            if spec.counts_from.startswith("the catalogue") else ""
        raise SubmissionError(
            f"{video.entry} has {source.n_frames} frames; {spec.counts_from} expects {video.n_frames}{hint}."
        )


def check_numbering(source: ImageFolderVideo, video: ExpectedVideo) -> None:
    """Refuse image files numbered neither 0, 1, 2, ... (positions) nor by the sequence's original frame indices:
    a gap would score every later image against the wrong stored frame. The message follows the numbering the
    files keep longest. Too few or too many files are left to the frame count's check."""
    numbers = source.numbers
    numberings = {"position": range(len(numbers))}
    if video.timesteps is not None:
        numberings["original frame index"] = video.timesteps
    gaps = {named: _first_gap(numbers, expected) for named, expected in numberings.items()}
    if any(gap is None for gap in gaps.values()):
        return
    named = max(gaps, key=lambda name: gaps[name][0])
    gap = gaps[named][1]
    by_timestep = "" if video.timesteps is None else \
        f", or by the sequence's original frame indices ({', '.join(f'{t:05d}' for t in video.timesteps[:3])}, ...)"
    raise SubmissionError(
        f"The frames of {source.files[0].parent} skip {gap:05d} (numbered by {named}, {len(numbers)} files from "
        f"{numbers[0]:05d} to {numbers[-1]:05d}); number them 00000, 00001, ... one per stored frame{by_timestep}, "
        "so that no image is scored against another frame."
    )


def _first_gap(numbers: tuple[int, ...], expected) -> tuple[int, int] | None:
    """(position, expected number) where ``numbers`` (sorted) first leave ``expected``, or None if they never do."""
    return next(((i, wanted) for i, (number, wanted) in enumerate(zip(numbers, expected)) if number != wanted), None)


def _not_in_submission(spec: SubmissionSpec, key: VideoKey) -> str:
    participant, sequence, serial = key
    videos = spec.videos
    if participant not in {v.participant for v in videos}:
        return f"participant {participant} is not in the {spec.benchmark} submission"
    sequences = sorted({v.sequence for v in videos if v.participant == participant})
    if sequence not in sequences:
        return f"sequence {sequence!r} of participant {participant} is not submitted; expected {', '.join(sequences)}"
    serials = catalogue.submission_serials(spec.benchmark)
    return f"camera {serial!r} is not submitted for {spec.benchmark}; expected {', '.join(serials)}"


def _describe(predictions: Any) -> str:
    if isinstance(predictions, (str, os.PathLike)):
        return str(predictions)
    return f"the given {type(predictions).__name__}"
