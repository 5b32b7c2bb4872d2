"""Several VHAP exports of one participant combined into one dataset, as VHAP's ``combine_nerf_datasets.py`` does.

The sources are ``export-frames --format vhap`` folders beside the target folder (same parent); the target holds
only ``transforms_{train,val,test}.json``, ``canonical_flame_param.npz`` (of the first train source),
``sequences_{trainval,test}.txt`` and ``nersemble_union.json`` (which marks the folder as a union of ours, so a
rerun may rewrite it; any other non-empty folder is refused): frames point into the sources through
``../<source>/...``. Timestep indices are made consecutive across the sources, train sources first;
``timestep_index_original`` and ``timestep_id`` are dropped, as VHAP drops them. The validation set is the
validation camera (index 8 when present, else the last) of the train sources.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from copy import deepcopy
from pathlib import Path

from .. import __version__
from ..atomic import atomic_path, write_atomic
from ..cameras import transforms_problem
from ..errors import ConfigError, StoreError
from ..inputs.jsontext import TRANSFORMS_MAX_BYTES, kind_of, read_json_file
from ..inputs.origin import Origin
from ..outputs import check_output_folder
from .vhap import CANONICAL_FILE, VAL_CAMERA_INDEX

PATH_KEYS = ("file_path", "flame_param_path", "fg_mask_path")
UNION_FILE = "nersemble_union.json"


def combine_vhap_exports(train: list[Path], test: list[Path], target: Path) -> dict[str, int]:
    """Write the union of the VHAP exports ``train`` and ``test`` into ``target``; the frames of each file."""
    train, test, target = [Path(p) for p in train], [Path(p) for p in test], Path(target)
    if not train:
        raise ConfigError("Combining VHAP exports needs at least one train export folder.")
    for source in train + test:
        if source.resolve().parent != target.resolve().parent:
            raise ConfigError(
                f"The export {source} is not in the same folder as the target {target}; VHAP's layout points into "
                "sibling folders (../<export>/...), so put them side by side."
            )
    prefixes = {source.name.split("_")[0] for source in train + test}
    if len(prefixes) > 1:
        raise ConfigError(
            f"Cannot combine exports of different participants: folder names start with {', '.join(sorted(prefixes))}; "
            "name each export folder <participant>_<sequence> as VHAP does."
        )
    for source in train + test:
        if source.resolve() == target.resolve():
            raise ConfigError(f"The target {target} is also one of the exports to combine; give a new folder as "
                              "TARGET.")
    databases = [_read_database(source) for source in train + test]
    next_timestep = 0
    combined_train, next_timestep = _combine(train, databases[:len(train)], next_timestep)
    combined_test, _ = _combine(test, databases[len(train):], next_timestep)
    documents = {**_train_val(combined_train), "transforms_test.json": combined_test}
    _claim_target(target)
    write_atomic(target / UNION_FILE, json.dumps({
        "train": [s.name for s in train], "test": [s.name for s in test],
        "created_by": f"nersemble_zarr {__version__}"}, indent=1).encode())
    with atomic_path(target / CANONICAL_FILE) as partial:
        shutil.copyfile(train[0] / CANONICAL_FILE, partial)
    for name, document in documents.items():
        write_atomic(target / name, json.dumps(document, indent=4).encode())
    write_atomic(target / "sequences_trainval.txt", "".join(f"{s.name}\n" for s in train).encode())
    write_atomic(target / "sequences_test.txt", "".join(f"{s.name}\n" for s in test).encode())
    return {name: len(document["frames"]) for name, document in documents.items()}


def _claim_target(target: Path) -> None:
    """Create ``target``, or accept it when empty or marked as a union of ours; refuse any other folder (its
    files are the user's: never replaced)."""
    check_output_folder(target)
    marker = target / UNION_FILE
    ours = os.path.lexists(marker) and stat.S_ISREG(os.lstat(marker).st_mode)
    if target.exists() and not ours and any(target.iterdir()):
        raise ConfigError(f"{target} exists and is not a union written by combine-vhap (no {UNION_FILE}); "
                          "choose an empty or new folder.")
    target.mkdir(parents=True, exist_ok=True)


def _read_database(source: Path) -> dict:
    """The transforms.json of the export ``source``, checked for everything combining reads from it."""
    path = source / "transforms.json"
    if not (source / CANONICAL_FILE).is_file() or not path.is_file():
        raise StoreError(f"{source} is not a VHAP export with FLAME parameters (no {path.name} or {CANONICAL_FILE}).")
    origin = Origin(f"The transforms file {path}", "export that sequence again")
    document = read_json_file(path, origin, TRANSFORMS_MAX_BYTES)
    if not isinstance(document, dict):
        raise StoreError(f"{origin.label} holds {kind_of(document)}, not a JSON object; export that sequence again.")
    if (problem := _layout_problem(document)) is not None:
        raise StoreError(f"{origin.label} is not a VHAP transforms file of nersemble_zarr: {problem}; export that "
                         "sequence again.")
    if (problem := transforms_problem(document)) is not None:  # its cameras would be written into the union
        raise StoreError(f"{origin.label} holds an unusable camera, {problem}; export that sequence again.")
    return document


def _layout_problem(database: dict) -> str | None:
    """What in a transforms document combining cannot use (None when all is there)."""
    steps, frames = database.get("timestep_indices"), database.get("frames")
    if not isinstance(steps, list) or not all(_whole(t) for t in steps):
        return "'timestep_indices' is not a list of whole numbers"
    if not isinstance(frames, list) or not all(isinstance(f, dict) for f in frames):
        return "'frames' is not a list of objects"
    for number, frame in enumerate(frames):
        if not (_whole(frame.get("timestep_index")) and 0 <= frame["timestep_index"] < len(steps)):
            return f"frame {number} has no 'timestep_index' into 'timestep_indices'"
        if not _whole(frame.get("camera_index")):
            return f"frame {number} has no whole 'camera_index'"
        if not all(isinstance(frame[key], str) for key in PATH_KEYS if key in frame):
            return f"frame {number} has a path that is not a string"
    return None


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _combine(sources: list[Path], databases: list[dict], first_timestep: int) -> tuple[dict, int]:
    """One database of ``sources`` with timestep indices shifted to follow each other from ``first_timestep``."""
    combined: dict | None = None
    next_timestep = first_timestep
    for source, database in zip(sources, databases):
        database = deepcopy(database)
        database["timestep_indices"] = [t + next_timestep for t in database["timestep_indices"]]
        next_timestep += len(database["timestep_indices"])
        for frame in database["frames"]:
            frame.pop("timestep_index_original", None)
            frame.pop("timestep_id", None)
            frame["timestep_index"] = database["timestep_indices"][frame["timestep_index"]]
            for key in PATH_KEYS:
                if key in frame:
                    frame[key] = str(Path("..") / source.name / frame[key])
        if combined is None:
            combined = database
        else:
            combined["frames"] += database["frames"]
            combined["timestep_indices"] += database["timestep_indices"]
    if combined is None:
        return {"frames": [], "timestep_indices": [], "camera_indices": []}, next_timestep
    combined["timestep_indices"] = sorted(combined["timestep_indices"])
    combined["camera_indices"] = sorted({f["camera_index"] for f in combined["frames"]})
    return combined, next_timestep


def _train_val(database: dict) -> dict[str, dict]:
    """transforms_train.json and transforms_val.json: the validation camera's frames go to val."""
    shared = {key: value for key, value in database.items() if key not in ("frames", "camera_indices")}
    cameras = database["camera_indices"]
    if len(cameras) > 1:
        val_camera = VAL_CAMERA_INDEX if VAL_CAMERA_INDEX in cameras else cameras[-1]
        train_cameras, val_cameras = [c for c in cameras if c != val_camera], [val_camera]
    else:
        train_cameras, val_cameras = cameras, []
    return {
        "transforms_train.json": {**deepcopy(shared), "camera_indices": train_cameras,
                                  "frames": [f for f in database["frames"] if f["camera_index"] in train_cameras]},
        "transforms_val.json": {**deepcopy(shared), "camera_indices": val_cameras,
                                "frames": [f for f in database["frames"] if f["camera_index"] in val_cameras]},
    }
