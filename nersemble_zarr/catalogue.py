"""The benchmark catalogue: participants, sequences, cameras, splits, frame sizes and asset paths.

These are facts about the real NeRSemble benchmark server: its folder layout, file names, participants,
sequences, cameras and hold-out splits. Nothing here does I/O but reading the packaged list of SVFR image keys.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType
from typing import Iterable, NamedTuple

from .errors import CatalogueError, shown
from .inputs.jsontext import parse_json
from .inputs.origin import Origin
from .units import listed

BENCHMARKS = ("nvs", "mono_flame_avatar")  # the video benchmarks (stores, video submissions)
SVFR = "svfr"  # single-view 3D face reconstruction: one image per key, mesh submissions
ALL_BENCHMARKS = BENCHMARKS + (SVFR,)

SERIALS = (
    "222200042", "222200044", "222200046", "222200040", "222200036", "222200048", "220700191", "222200041",
    "222200037", "222200038", "222200047", "222200043", "222200049", "222200039", "222200045", "221501007",
)

# ---------------------------------------------------------------- NVS
NVS_SEQUENCES: dict[int, str] = {
    388: "GLASSES",
    422: "EXP-2-eyes",
    443: "FREE",
    445: "EXP-6-tongue-1",
    475: "HAIR",
}
NVS_N_FRAMES: dict[int, int] = {388: 1118, 422: 517, 443: 1108, 445: 514, 475: 259}
NVS_HOLD_OUT_SERIALS = ("222200046", "222200037", "222200039")
NVS_TRAIN_SERIALS = tuple(s for s in SERIALS if s not in NVS_HOLD_OUT_SERIALS)
NVS_FPS = 73.0
NVS_WIDTH, NVS_HEIGHT = 1100, 1604

# ---------------------------------------------------------------- Mono FLAME avatar
MONO_PARTICIPANTS = (393, 404, 461, 477, 486)
MONO_TRAIN_SEQUENCES = (
    "EXP-1-head", "EXP-2-eyes", "EXP-3-cheeks+nose", "EXP-4-lips", "EXP-5-mouth", "EXP-8-jaw-1", "EXP-9-jaw-2",
    "EMO-2-surprise+fear", "EMO-3-angry+sad", "EMO-4-disgust+happy",
    "SEN-01-cramp_small_danger", "SEN-02-same_phrase_thirty_times", "SEN-03-pluck_bright_rose",
    "SEN-04-two_plus_seven", "SEN-05-glow_eyes_sweet_girl", "SEN-06-problems_wise_chief",
    "SEN-07-fond_note_fried", "SEN-08-clothes_and_lodging",
)
MONO_TEST_SEQUENCES = ("FREE", "EMO-1-shout+laugh", "SEN-09-frown_events_bad", "SEN-10-port_strong_smokey")
MONO_TRAIN_SERIAL = "222200037"
MONO_HOLD_OUT_SERIALS = ("222200046", "220700191", "222200039")
MONO_FPS = 24.3
MONO_WIDTH, MONO_HEIGHT = 512, 512

# ---------------------------------------------------------------- SVFR (single-view face reconstruction)
SVFR_PARTICIPANTS = (17, 60, 71, 102, 112, 123, 133, 139, 175, 178, 183, 194, 215, 226, 256, 266, 289, 310, 320, 372)
SVFR_IMAGE_FILE = "rgb.png"
SVFR_TASKS = ("posed", "neutral")
SVFR_FLAME_VERTICES = 5023  # a mesh of FLAME topology needs no landmarks
SVFR_N_LANDMARKS = 7  # the NoW benchmark's landmarks, for aligning any other topology to the ground truth
_SVFR_KEYS_FILE = "svfr_image_keys.json"


class ImageKey(NamedTuple):
    """One SVFR image: a frame (``timestep``) of one camera (``serial``) in a NeRSemble sequence."""

    sequence: str
    timestep: int
    serial: str


@functools.cache
def svfr_image_keys() -> Mapping[int, tuple[ImageKey, ...]]:
    """participant -> its image keys, in the official toolkit's order (391 keys for 20 participants); read-only."""
    data = resources.files("nersemble_zarr").joinpath("data", _SVFR_KEYS_FILE)
    raw = parse_json(data.read_bytes(), Origin(f"The package's data file {_SVFR_KEYS_FILE}",
                                               "reinstall nersemble_zarr"))
    return MappingProxyType({
        int(p): tuple(ImageKey(str(s), int(t), str(c)) for s, t, c in keys) for p, keys in raw["participants"].items()
    })


def svfr_folder(key: ImageKey) -> str:
    """Folder name of an image as the server and the download have it: timestep not padded (``EXP-4-lips_6_...``)."""
    return f"{key.sequence}_{key.timestep}_{key.serial}"


def svfr_submission_folder(key: ImageKey) -> str:
    """Folder name of an image inside a submission zip: timestep padded to 3 digits (``EXP-4-lips_006_...``)."""
    return f"{key.sequence}_{key.timestep:03d}_{key.serial}"


_SVFR_FOLDER = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_+\-]*)_([0-9]{1,9})_([0-9]{9})$")


def parse_svfr_folder(name: str) -> ImageKey | None:
    """The image key a folder name spells (padded or not), or None when it spells none."""
    match = _SVFR_FOLDER.match(name)
    return None if match is None else ImageKey(match[1], int(match[2]), match[3])


def svfr_image_path(participant: int, key: ImageKey) -> str:
    """Relative path (below ``svfr/``) of one image: ``{p:03d}/{sequence}_{timestep}_{serial}/rgb.png``."""
    check_safe_name(key.sequence, "sequence")
    return f"{participant:03d}/{svfr_folder(key)}/{SVFR_IMAGE_FILE}"


def svfr_mesh_entry(participant: int, key: ImageKey, task: str) -> str:
    """Path of one mesh inside a submission zip: ``{p:03d}/{sequence}_{timestep:03d}_{serial}/mesh_{task}.ply``."""
    return f"{participant:03d}/{svfr_submission_folder(key)}/mesh_{check_svfr_task(task)}.ply"


def svfr_landmarks_entry(participant: int, key: ImageKey, task: str) -> str:
    """Path of one mesh's NoW landmarks inside a submission zip (``landmarks_{task}.npy`` beside the mesh)."""
    return f"{participant:03d}/{svfr_submission_folder(key)}/landmarks_{check_svfr_task(task)}.npy"


def check_svfr_task(task: str) -> str:
    """Return ``task`` if it is 'posed' or 'neutral', else raise a CatalogueError."""
    if task not in SVFR_TASKS:
        raise CatalogueError(f"Unknown SVFR task {shown(task)}; expected 'posed' or 'neutral'.")
    return task


# ---------------------------------------------------------------- asset paths (relative to {URL}/{benchmark}/)
METADATA_FILE = "metadata.json"
TRACKING_FILE = "flame2023_tracking_v2.npz"
TRACKING_FILE_V1 = "flame2023_tracking.npz"

ASSETS: dict[str, tuple[str, ...]] = {
    "nvs": ("calibration", "images", "alpha_maps", "pointclouds"),
    "mono_flame_avatar": ("calibration", "images", "alpha_maps", "flame2023_tracking", "flame2023_tracking_v1"),
    SVFR: ("images",),
}
# The official downloader fetches everything but the optional older tracking file by default.
DEFAULT_ASSETS: dict[str, tuple[str, ...]] = {
    "nvs": ("calibration", "images", "alpha_maps", "pointclouds"),
    "mono_flame_avatar": ("calibration", "images", "alpha_maps", "flame2023_tracking"),
    SVFR: ("images",),
}

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+\-]*$")


@dataclass(frozen=True)
class BenchmarkSpec:
    """Fixed properties of one benchmark: frame size, fps and camera split."""

    name: str
    width: int
    height: int
    fps: float
    hold_out_serials: tuple[str, ...]
    train_serials: tuple[str, ...]


SPECS: dict[str, BenchmarkSpec] = {
    "nvs": BenchmarkSpec("nvs", NVS_WIDTH, NVS_HEIGHT, NVS_FPS, NVS_HOLD_OUT_SERIALS, NVS_TRAIN_SERIALS),
    "mono_flame_avatar": BenchmarkSpec(
        "mono_flame_avatar", MONO_WIDTH, MONO_HEIGHT, MONO_FPS, MONO_HOLD_OUT_SERIALS, (MONO_TRAIN_SERIAL,)
    ),
}


def check_benchmark(benchmark: str, choices: tuple[str, ...] = BENCHMARKS) -> str:
    """Return ``benchmark`` if it is one of ``choices`` (the video benchmarks by default), else raise a
    CatalogueError naming the choices."""
    if benchmark not in choices:
        raise CatalogueError(f"Unknown benchmark {shown(benchmark)}; expected one of {', '.join(choices)}.")
    return benchmark


def participants(benchmark: str) -> tuple[int, ...]:
    """All participant ids of a benchmark (svfr included), in catalogue order."""
    check_benchmark(benchmark, ALL_BENCHMARKS)
    if benchmark == SVFR:
        return SVFR_PARTICIPANTS
    return tuple(NVS_SEQUENCES) if benchmark == "nvs" else MONO_PARTICIPANTS


class RangeMember(int):
    """A participant id named by a range (``-p 17-30``): selected where the benchmark has it, else left out."""


def _without_range_misses(requested: tuple[int, ...], known: Iterable[int], what: str) -> tuple[int, ...]:
    """``requested`` less the range members that are not ``known``; a CatalogueError if nothing is left."""
    known = set(known)
    kept = tuple(p for p in requested if p in known or not isinstance(p, RangeMember))
    if requested and not kept:
        raise CatalogueError(
            f"No participant of {what} lies in the range(s) asked for ({min(requested)}..{max(requested)})."
        )
    return kept


def check_participants(benchmark: str, requested: Iterable[int] | None) -> tuple[int, ...]:
    """Validate requested participant ids (None means all) against the catalogue; ids of a range
    (``RangeMember``) that the benchmark lacks are left out."""
    known = participants(benchmark)
    if requested is None:
        return known
    requested = _without_range_misses(tuple(requested), known, repr(benchmark))
    unknown = [p for p in requested if p not in known]
    if unknown:
        raise CatalogueError(
            f"Unknown participant {shown(unknown[0])} for benchmark {benchmark!r}; "
            f"expected one of {', '.join(str(p) for p in known)}."
        )
    return requested


def split_selection(
    benchmarks: Iterable[str], participant_ids: Iterable[int] | None, sequence_names: Iterable[str] | None
) -> dict[str, tuple[tuple[int, ...] | None, tuple[str, ...] | None]]:
    """Apply participant and sequence filters to the benchmarks that have them (ids and names never overlap).

    Returns benchmark -> (its participants, its sequences), None meaning no filter, for every benchmark that
    has at least one requested participant and sequence; a requested id or name that none of ``benchmarks``
    has is a CatalogueError naming it.
    """
    benchmarks = tuple(check_benchmark(b, ALL_BENCHMARKS) for b in benchmarks)
    wanted_p = None if participant_ids is None else _without_range_misses(
        tuple(participant_ids), (p for b in benchmarks for p in participants(b)), " or ".join(benchmarks))
    wanted_p = None if wanted_p is None else tuple(int(p) for p in wanted_p)
    wanted_s = None if sequence_names is None else tuple(sequence_names)
    known_s = {b: _selectable_sequences(b) for b in benchmarks}
    for value in wanted_p or ():
        if not any(value in participants(b) for b in benchmarks):
            known = ", ".join(str(p) for b in benchmarks for p in participants(b))
            raise CatalogueError(
                f"Unknown participant {shown(value)} for {' or '.join(benchmarks)}; expected one of {known}."
            )
    for value in wanted_s or ():
        check_safe_name(value, "sequence")
        if not any(value in known_s[b] for b in benchmarks):
            known = listed(sorted(set().union(*known_s.values())))
            raise CatalogueError(f"Unknown sequence {shown(value)} for {' or '.join(benchmarks)}; expected one of {known}.")
    selection = {}
    for benchmark in benchmarks:
        mine_p = None if wanted_p is None else tuple(p for p in wanted_p if p in participants(benchmark))
        mine_s = None if wanted_s is None else tuple(s for s in wanted_s if s in known_s[benchmark])
        if mine_p != () and mine_s != ():
            selection[benchmark] = (mine_p, mine_s)
    return selection


def _selectable_sequences(benchmark: str) -> set[str]:
    """The sequence names ``-s`` picks from in a benchmark (none in SVFR, whose images are chosen by participant)."""
    if benchmark == SVFR:
        return set()
    return set(NVS_SEQUENCES.values()) if benchmark == "nvs" else set(MONO_TRAIN_SEQUENCES + MONO_TEST_SEQUENCES)


def sequences(benchmark: str, participant: int) -> tuple[str, ...]:
    """The sequences of one participant: the single NVS sequence, or mono train then test sequences."""
    check_participants(benchmark, [participant])
    if benchmark == SVFR:
        return tuple(dict.fromkeys(key.sequence for key in svfr_image_keys()[participant]))
    if benchmark == "nvs":
        return (NVS_SEQUENCES[participant],)
    return MONO_TRAIN_SEQUENCES + MONO_TEST_SEQUENCES


def is_test_sequence(benchmark: str, sequence: str) -> bool:
    """True for the mono benchmark's hold-out sequences (tracking only, no video on the server)."""
    return benchmark == "mono_flame_avatar" and sequence in MONO_TEST_SEQUENCES


def video_serials(benchmark: str, sequence: str) -> tuple[str, ...]:
    """Serials whose videos the server has for a sequence."""
    if benchmark == "nvs":
        return NVS_TRAIN_SERIALS
    return () if is_test_sequence(benchmark, sequence) else (MONO_TRAIN_SERIAL,)


def split_of(benchmark: str, serial: str) -> str:
    """'train' or 'test' for a camera serial in a benchmark."""
    check_serial(serial)
    return "test" if serial in SPECS[check_benchmark(benchmark)].hold_out_serials else "train"


def check_serial(serial: str) -> str:
    """Return ``serial`` if it is one of the 16 cameras, else raise a CatalogueError."""
    if serial not in SERIALS:
        raise CatalogueError(f"Unknown camera serial {shown(serial)}; expected one of the 16 NeRSemble serials.")
    return serial


def check_safe_name(name: str, what: str) -> str:
    """Refuse names that could escape a folder (``..``, slashes, absolute paths) or hold odd characters."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        raise CatalogueError(f"Refusing {what} name {shown(name)}: only letters, digits, '_', '+' and '-' are allowed.")
    return name


# ---------------------------------------------------------------- relative paths of assets
def calibration_path(participant: int) -> str:
    return f"{participant:03d}/calibration/camera_params.json"


def video_path(participant: int, sequence: str, serial: str, kind: str = "images") -> str:
    """Relative path of an ``images`` or ``alpha_maps`` mp4."""
    if kind not in ("images", "alpha_maps"):
        raise CatalogueError(f"Unknown video kind {shown(kind)}; expected 'images' or 'alpha_maps'.")
    return f"{participant:03d}/sequences/{check_safe_name(sequence, 'sequence')}/{kind}/cam_{check_serial(serial)}.mp4"


def pointcloud_path(participant: int, sequence: str, timestep: int) -> str:
    return f"{participant:03d}/sequences/{check_safe_name(sequence, 'sequence')}/pointclouds/frame_{int(timestep):05d}.pcd"


def tracking_path(participant: int, sequence: str, filename: str = TRACKING_FILE) -> str:
    return f"{participant:03d}/sequences/{check_safe_name(sequence, 'sequence')}/tracking/{filename}"


def submission_entry(participant: int, sequence: str, serial: str) -> str:
    """Path of one video inside a submission zip."""
    return f"{participant:03d}/{sequence}/cam_{serial}.mp4"


def submission_serials(benchmark: str) -> tuple[str, ...]:
    """Cameras a submission must contain per sequence (mono: the train camera and the hold-out ones)."""
    if check_benchmark(benchmark) == "nvs":
        return NVS_HOLD_OUT_SERIALS
    return (MONO_TRAIN_SERIAL,) + MONO_HOLD_OUT_SERIALS


def submission_sequences(benchmark: str) -> list[tuple[int, str]]:
    """(participant, sequence) pairs a complete submission covers."""
    if check_benchmark(benchmark) == "nvs":
        return list(NVS_SEQUENCES.items())
    return [(p, s) for p in MONO_PARTICIPANTS for s in MONO_TEST_SEQUENCES]
