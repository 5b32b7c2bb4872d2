"""What a store holds: sequences, arrays with shapes, chunking, codec and size, and what is missing."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import zarr

from . import catalogue, integrity, schema, storage, store_metadata
from .levels.layout import FULL_RESOLUTION_GROUP_ATTR
from .units import counted, human_bytes, listed

_FRAME_VARIABLES = (schema.IMAGES, schema.ALPHA)


@dataclass
class ArrayInfo:
    name: str
    dims: list[str]
    shape: list[int]
    dtype: str
    chunks: list[int]
    shards: list[int] | None
    codec: str
    stored_bytes: int


@dataclass
class SequenceInfo:
    path: str
    converted: bool
    arrays: list[ArrayInfo] = field(default_factory=list)
    cameras_missing: dict[str, list[str]] = field(default_factory=dict)
    cameras: dict[str, list[str]] = field(default_factory=dict)  # split ("train", "test") -> serials
    video_serials: list[str] = field(default_factory=list)  # the cameras with frames
    timesteps: list[int] = field(default_factory=list)  # original frame indices
    lost_chunk: str | None = None  # the first chunk flagged as written whose file is missing (integrity)
    level: int = 1  # resolution level (1: full resolution)
    frame_size: list[int] = field(default_factory=list)  # [height, width] of a frame at the level
    full_size: list[int] = field(default_factory=list)  # [height, width] at full resolution
    colour_corrected: bool | None = None  # a dataset group's frames: colour-corrected or as decoded (else None)
    colour_terms: int | None = None  # a dataset group's colour_correction: terms per 3 x terms matrix (None: none)
    background_serials: list[str] | None = None  # a dataset group's cameras with a background picture (None: none)


@dataclass
class StoreInventory:
    store: str
    attrs: dict
    sequences: list[SequenceInfo]
    missing_sequences: list[str]
    stored_bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


def inventory(store: str | os.PathLike) -> StoreInventory:
    """Describe a store: every sequence's arrays, their chunking, codec and bytes on disk, and gaps."""
    path = os.fspath(store)
    attrs = storage.read_root_attrs(path)
    root = storage.open_group(path)
    # half-converted ones too (they show as INCOMPLETE), and dataset sequences converted straight to a level
    keys = storage.sequence_keys(path, complete_only=False, level=None)
    levels = storage.level_numbers(root)
    sequences = [
        _sequence_info(path, group_path, root[group_path], root)
        for level in [1] + levels
        for key in keys
        if (group_path := schema.level_group(level, *key)) in root
    ]
    svfr_groups = [schema.svfr_group(p) for p in catalogue.SVFR_PARTICIPANTS]
    sequences += [_sequence_info(path, group_path, root[group_path], root) for group_path in svfr_groups
                  if group_path in root]
    present = {schema.sequence_group(*key) for key in keys}
    converted = attrs.get(schema.BENCHMARKS_ATTR, [])
    missing = [
        schema.sequence_group(b, p, s)
        for b in converted if b in catalogue.BENCHMARKS  # the dataset's listing is not the store's to know
        for p in catalogue.participants(b)
        for s in catalogue.sequences(b, p)
        if schema.sequence_group(b, p, s) not in present
    ] + [group_path for group_path in svfr_groups if catalogue.SVFR in converted and group_path not in root]
    return StoreInventory(path, attrs, sequences, missing, sum(a.stored_bytes for s in sequences for a in s.arrays))


def _sequence_info(store: str, path: str, group: zarr.Group, root: zarr.Group) -> SequenceInfo:
    store_metadata.check_group_attrs(store, path, group.attrs)
    info = SequenceInfo(path, bool(group.attrs.get(schema.CONVERTED_ATTR, False)))
    lost = integrity.lost_chunk(store, group)  # one stat per flagged shard file
    info.lost_chunk = None if lost is None else str(lost)
    serials = list(group[schema.SERIAL][:]) if schema.SERIAL in group else []
    video_serials = set(group.attrs.get(schema.VIDEO_SERIALS_ATTR, []))
    if group.attrs.get(schema.BENCHMARK_ATTR) == catalogue.SVFR:  # one entry per image, named like its folder
        serials = [
            catalogue.svfr_folder(catalogue.ImageKey(str(s), int(t), str(c)))
            for s, t, c in zip(group[schema.SVFR_SEQUENCE][:], group[schema.TIMESTEP][:], group[schema.SERIAL][:])
        ]
        video_serials = set(serials)
    else:  # cameras per split and the original frame indices
        no_split = "all" if group.attrs.get(schema.BENCHMARK_ATTR) == schema.DATASET else "?"  # no hold-out
        splits = list(group[schema.SPLIT][:]) if schema.SPLIT in group else [no_split] * len(serials)
        for serial, split in zip(serials, splits):
            info.cameras.setdefault(str(split), []).append(str(serial))
        info.video_serials = [str(s) for s in serials if s in video_serials]
        info.timesteps = [int(t) for t in group[schema.TIMESTEP][:]] if schema.TIMESTEP in group else []
    _describe_level_and_dataset(info, group)
    for name, array in sorted(group.arrays()):
        info.arrays.append(
            ArrayInfo(
                name=name,
                dims=list(array.metadata.dimension_names or ()),
                shape=list(array.shape),
                dtype=str(array.dtype),
                chunks=list(array.chunks),
                shards=list(array.shards) if array.shards else None,
                codec=_codec_name(array),
                stored_bytes=int(array.nbytes_stored()),
            )
        )
        if name in _FRAME_VARIABLES:
            done = group[schema.converted_flag(name)][:]
            info.cameras_missing[name] = [str(s) for s, ok in zip(serials, done) if not ok and s in video_serials]
    downsampled_from = group.attrs.get(FULL_RESOLUTION_GROUP_ATTR)
    if schema.BACKGROUND in group:
        done = group[schema.converted_flag(schema.BACKGROUND)][:]
        info.background_serials = [str(s) for s, ok in zip(serials, done) if ok]
        if downsampled_from and downsampled_from in root:  # the level lacks a picture its sequence has
            expected = root[f"{downsampled_from}/{schema.converted_flag(schema.BACKGROUND)}"][:]
            info.cameras_missing[schema.BACKGROUND] = [
                str(s) for s, ok, wanted in zip(serials, done, expected) if wanted and not ok]
    if downsampled_from:  # a level `downsample` wrote is complete when every camera's flags are set
        info.converted = not any(info.cameras_missing.values())
    info.converted = info.converted and info.lost_chunk is None
    return info


def _describe_level_and_dataset(info: SequenceInfo, group: zarr.Group) -> None:
    """A group's level and frame size; for a dataset group also its colour correction and background pictures."""
    attrs = group.attrs
    info.level = int(attrs.get(schema.LEVEL_ATTR, 1))
    if schema.HEIGHT_ATTR in attrs and schema.WIDTH_ATTR in attrs:
        info.frame_size = [int(attrs[schema.HEIGHT_ATTR]), int(attrs[schema.WIDTH_ATTR])]
        full = (attrs.get("full_height"), attrs.get("full_width"))
        info.full_size = [int(full[0]), int(full[1])] if None not in full else []
    if attrs.get(schema.BENCHMARK_ATTR) != schema.DATASET:
        return
    info.colour_corrected = bool(attrs.get(schema.COLOUR_CORRECTED_ATTR, False))
    if schema.COLOUR_CORRECTION in group:
        info.colour_terms = int(group[schema.COLOUR_CORRECTION].shape[-1])


def _codec_name(array: zarr.Array) -> str:
    codecs = list(array.serializer and [array.serializer] or []) + list(array.compressors)
    names = []
    for codec in codecs:
        inner = getattr(codec, "codecs", None)  # a sharding codec wraps the real ones
        for c in inner or [codec]:
            names.append(c.to_dict()["name"])
    return "+".join(n for n in names if n not in ("bytes",)) or "none"


def format_inventory(inv: StoreInventory) -> str:
    """Human-readable tree of the inventory."""
    lines = [f"{inv.store}  (format {inv.attrs.get(schema.FORMAT_ATTR)}, {human_bytes(inv.stored_bytes)} stored)"]
    rows = {id(a): _array_columns(a) for seq in inv.sequences for a in seq.arrays}
    widths = [max((len(row[i]) for row in rows.values()), default=0) for i in range(6)]  # every column lines up
    for seq in inv.sequences:
        state = "LOST DATA" if seq.lost_chunk else "complete" if seq.converted else "INCOMPLETE"
        lines.append(f"  /{seq.path}  [{state}]")
        lines.extend(f"    {line}" for line in _contents(seq))
        for a in seq.arrays:
            cells = rows[id(a)]
            lines.append("    " + "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)) +
                         f"  {human_bytes(a.stored_bytes)}")
        for name, serials in seq.cameras_missing.items():
            if serials and name == schema.BACKGROUND:
                lines.append(f"    ! {name}: the picture of camera(s) {', '.join(serials)} not written yet")
            elif serials:
                what = "images" if seq.path.startswith(f"{catalogue.SVFR}/") else "cameras"
                lines.append(f"    ! {name}: {what} not converted yet: {', '.join(serials)}")
        if seq.lost_chunk:
            lines.append(f"    ! {seq.lost_chunk}")
    if inv.missing_sequences:
        lines.append(f"  not in the store ({len(inv.missing_sequences)} of the catalogue's sequences):")
        lines.extend(f"    {line}" for line in _missing_lines(inv.missing_sequences))
    return "\n".join(lines)


def _array_columns(a) -> tuple[str, str, str, str, str, str]:
    """An array's name, dims, shape, dtype, chunking and codec, as the columns of its line."""
    chunking = f"chunks {tuple(a.chunks)}" + (f" in shards {tuple(a.shards)}" if a.shards else "")
    return a.name, str(tuple(a.dims)), str(tuple(a.shape)), str(a.dtype), chunking, a.codec


def _contents(seq: SequenceInfo) -> list[str]:
    """Which cameras (per split, and those with frames) and which timesteps a sequence holds; a level's frame size;
    a dataset group's colour correction and background pictures."""
    lines = []
    if seq.level > 1 and seq.frame_size:
        full = f" (full resolution {_size(seq.full_size)})" if seq.full_size else ""
        lines.append(f"resolution level {seq.level}: frames of {_size(seq.frame_size)}{full}, area-averaged")
    elif seq.colour_corrected is not None and seq.frame_size:
        lines.append(f"full resolution: frames of {_size(seq.frame_size)}")
    if seq.timesteps:
        t = seq.timesteps
        lines.append(f"timesteps: {counted(len(t), 'timestep')}, original frames {t[0]}..{t[-1]}")
    for split, serials in sorted(seq.cameras.items(), reverse=True):  # train first
        with_frames = [s for s in serials if s in seq.video_serials]
        frames = f"{len(with_frames)} with frames" if with_frames else "no frames"
        if seq.colour_corrected is not None:  # the dataset: no hold-out, so no split to name
            lines.append(f"cameras ({len(serials)}, {frames}, no hold-out): {listed(serials, 16)}")
        else:
            lines.append(f"{split} cameras ({len(serials)}, {frames}): {listed(serials, 16)}")
    if seq.colour_corrected is not None:
        lines.extend(_dataset_lines(seq))
    return lines


def _size(size: list[int]) -> str:
    """[height, width] as ``WxH pixels``."""
    return f"{size[1]}x{size[0]} pixels"


def _dataset_lines(seq: SequenceInfo) -> list[str]:
    """A dataset group's colour correction and background pictures, in words."""
    matrices = f"3x{seq.colour_terms} colour_correction matrices" if seq.colour_terms else "no colour calibration"
    if seq.colour_corrected:
        lines = [f"frames colour-corrected with the cameras' {matrices}"]
    else:
        lines = [f"frames as decoded, not colour-corrected ({matrices} stored)"]
    serials = seq.background_serials
    if not serials:
        lines.append("background pictures: none")
    else:
        lines.append(f"background pictures ({counted(len(serials), 'camera')}, one picture each, no timestep): "
                     f"{listed(serials, 16)}")
    return lines


def _missing_lines(missing: list[str]) -> list[str]:
    """Missing sequence groups, one line per benchmark and participant (whole participants together)."""
    by_participant: dict[tuple[str, int], list[str]] = {}
    svfr = [path.split("/")[1] for path in missing if path.count("/") == 1]  # svfr/{participant}: no sequences
    for path in missing:
        if path.count("/") == 1:
            continue
        benchmark, participant, sequence = path.split("/", 2)
        by_participant.setdefault((benchmark, int(participant)), []).append(sequence)
    lines, whole = [], {}
    for (benchmark, participant), sequences in by_participant.items():
        if len(sequences) == len(catalogue.sequences(benchmark, participant)):
            whole.setdefault(benchmark, []).append(str(participant))
        else:
            lines.append(f"{benchmark}/{participant}: {counted(len(sequences), 'sequence')} ({listed(sequences, 4)})")
    svfr_line = [f"{catalogue.SVFR}: every image of participant(s) {', '.join(svfr)}"] if svfr else []
    return [f"{b}: every sequence of participant(s) {', '.join(ps)}" for b, ps in whole.items()] + lines + svfr_line

