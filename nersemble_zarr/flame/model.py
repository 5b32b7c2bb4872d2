"""Read the licensed FLAME 2023 model files without chumpy.

``flame2023.pkl`` (and its landmark embeddings) must be downloaded by the user from
https://flame.is.tue.mpg.de; nothing here downloads anything. Real model pickles were written with
Python 2 and may hold ``chumpy`` objects, and chumpy no longer imports on current Python, so the
unpickler maps every chumpy class to :class:`ChumpyStandIn`, which keeps the wrapped array (``x``).
Only numpy arrays, scipy.sparse matrices and a few builtin classes may be created while unpickling.
"""

from __future__ import annotations

import functools
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FlameError

FLAME_DIR_ENV = "NERSEMBLE_FLAME_DIR"
DEFAULT_FLAME_DIR = Path("~/.cache/FLAME")
MODEL_FILE = "flame2023.pkl"
STATIC_EMBEDDING_FILE = "flame_static_embedding.pkl"
DYNAMIC_EMBEDDING_FILE = "flame_dynamic_embedding.npy"
FLAME_URL = "https://flame.is.tue.mpg.de"
# Key present only in files written by nersemble_zarr.flame.standin (which are NOT the FLAME model).
STANDIN_KEY = "nersemble_zarr_standin_notice"

N_VERTICES, N_FACES, N_JOINTS = 5023, 9976, 5
N_SHAPE, N_EXPRESSION, N_POSE_BASIS = 300, 100, 36
N_DYNAMIC_ANGLES, N_CONTOUR_LANDMARKS = 79, 17

_EXPECTED_SHAPES: dict[str, tuple[int, ...]] = {
    "v_template": (N_VERTICES, 3),
    "shapedirs": (N_VERTICES, 3, N_SHAPE + N_EXPRESSION),
    "posedirs": (N_VERTICES, 3, N_POSE_BASIS),
    "J_regressor": (N_JOINTS, N_VERTICES),
    "weights": (N_VERTICES, N_JOINTS),
    "kintree_table": (2, N_JOINTS),
    "f": (N_FACES, 3),
}

# The numpy callables an array pickle needs (module paths of numpy 1 and 2); numpy's other modules hold
# functions that run code (numpy.testing's runstring), so nothing else of numpy is allowed.
_NUMPY_MODULES = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                  "numpy._core.numeric"}
_NUMPY_NAMES = {"_reconstruct", "scalar", "ndarray", "dtype", "_frombuffer"}
_ALLOWED_BUILTINS = {
    ("copyreg", "_reconstructor"), ("builtins", "object"), ("__builtin__", "object"),
    ("builtins", "set"), ("__builtin__", "set"), ("builtins", "frozenset"), ("__builtin__", "frozenset"),
    ("builtins", "slice"), ("__builtin__", "slice"), ("builtins", "complex"), ("__builtin__", "complex"),
    ("builtins", "bytearray"), ("_codecs", "encode"),
}


class ChumpyStandIn:
    """What a chumpy object becomes when unpickled here: a holder of its pickled state.

    A plain ``chumpy.Ch`` keeps its value in the state entry ``x``; derived chumpy expressions have no
    such array and cannot be evaluated without chumpy (:func:`to_numpy` says so).
    """

    chumpy_class = "chumpy"  # the pickled class path, set per stood-in class
    state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = state[0] or {}
        self.state = dict(state) if isinstance(state, dict) else {}


@functools.lru_cache(maxsize=None)
def _chumpy_stand_in_class(module: str, name: str) -> type:
    return type(name, (ChumpyStandIn,), {"__module__": module, "chumpy_class": f"{module}.{name}"})


class ChumpyFreeUnpickler(pickle.Unpickler):
    """An unpickler that turns chumpy objects into :class:`ChumpyStandIn` and refuses unknown classes."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return _chumpy_stand_in_class(module, name)
        if (module in _NUMPY_MODULES and name in _NUMPY_NAMES) or (module, name) in _ALLOWED_BUILTINS:
            return super().find_class(module, name)
        if module == "scipy.sparse" or module.startswith("scipy.sparse."):
            found = super().find_class(module, name)
            if _is_sparse_class(found):
                return found
        raise pickle.UnpicklingError(f"class {module}.{name} is not allowed in a FLAME file")


def _is_sparse_class(found: Any) -> bool:
    """Whether ``found`` is a scipy.sparse matrix or array class (FLAME stores J_regressor as one)."""
    import scipy.sparse

    sparse_bases = (scipy.sparse.spmatrix, getattr(scipy.sparse, "sparray", scipy.sparse.spmatrix))  # sparray: 1.11+
    return isinstance(found, type) and issubclass(found, sparse_bases)


def load_pickle(path: Path) -> Any:
    """Unpickle a (possibly Python 2) FLAME file without importing chumpy."""
    with open(path, "rb") as file, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # old module paths such as scipy.sparse.csc
        return ChumpyFreeUnpickler(file, encoding="latin1").load()


def to_numpy(value: Any, name: str, path: Path) -> np.ndarray:
    """A dense numpy array from an ndarray, scipy sparse matrix or chumpy stand-in."""
    if isinstance(value, ChumpyStandIn):
        if "x" not in value.state:
            raise FlameError(
                f"{path} stores {name!r} as a chumpy expression ({value.chumpy_class}) that cannot be read "
                f"without chumpy; download an unmodified flame2023.pkl from {FLAME_URL}."
            )
        value = value.state["x"]
    if hasattr(value, "toarray"):  # scipy.sparse
        value = value.toarray()
    return np.asarray(value)


@dataclass(frozen=True)
class FlameAssets:
    """The FLAME model's arrays (numpy, as stored) and optional landmark embeddings."""

    v_template: np.ndarray       # (5023, 3)
    shapedirs: np.ndarray        # (5023, 3, 400): 300 shape then 100 expression directions
    posedirs: np.ndarray         # (5023, 3, 36)
    j_regressor: np.ndarray      # (5, 5023), dense
    weights: np.ndarray          # (5023, 5)
    parents: np.ndarray          # (5,) int64, parents[0] = -1
    faces: np.ndarray            # (9976, 3) int64
    folder: Path
    is_standin: bool = False
    static_face_idx: np.ndarray | None = None      # (51,) int64
    static_bary: np.ndarray | None = None          # (51, 3)
    dynamic_face_idx: np.ndarray | None = None     # (79, 17) int64
    dynamic_bary: np.ndarray | None = None         # (79, 17, 3)

    @property
    def has_landmarks(self) -> bool:
        """Whether the static landmark embedding was found beside the model."""
        return self.static_face_idx is not None

    @property
    def description(self) -> str:
        """A short label for outputs made with these assets (says clearly when it is the stand-in)."""
        kind = "STAND-IN (NOT FLAME, random values for tests)" if self.is_standin else "FLAME 2023"
        return f"{kind} from {self.folder / MODEL_FILE}"


def resolve_flame_dir(folder: str | os.PathLike | None = None) -> Path:
    """The FLAME folder: the argument, else $NERSEMBLE_FLAME_DIR, else ~/.cache/FLAME."""
    chosen = folder if folder is not None else os.environ.get(FLAME_DIR_ENV) or DEFAULT_FLAME_DIR
    return Path(chosen).expanduser()


def load_flame_assets(folder: str | os.PathLike | None = None) -> FlameAssets:
    """Load flame2023.pkl (and landmark embeddings when present) from the FLAME folder."""
    folder = resolve_flame_dir(folder)
    path = folder / MODEL_FILE
    if not path.is_file():
        raise FlameError(
            f"FLAME model {path} not found; download flame2023.pkl (licensed) from {FLAME_URL} and put it in "
            f"{folder}, or point --flame-dir / ${FLAME_DIR_ENV} at its folder (on the synthetic benchmark: the "
            "stand-in that `nersemble-zarr demo` writes, demo-output/flame-standin-NOT-FLAME)."
        )
    try:
        raw = load_pickle(path)
    except Exception as error:  # any unpickling failure means the file is not a FLAME pickle
        raise FlameError(
            f"{path} is not a readable FLAME pickle ({type(error).__name__}: {error}); "
            f"download flame2023.pkl again from {FLAME_URL}."
        ) from error
    if not isinstance(raw, dict):
        raise FlameError(f"{path} holds a {type(raw).__name__}, not a FLAME model dictionary; "
                         f"download flame2023.pkl again from {FLAME_URL}.")
    arrays = {name: _model_array(raw, name, shape, path) for name, shape in _EXPECTED_SHAPES.items()}
    parents = arrays["kintree_table"][0].astype(np.int64)
    parents[0] = -1
    faces = arrays["f"].astype(np.int64)
    if faces.min() < 0 or faces.max() >= N_VERTICES:
        raise FlameError(f"{path} has face indices outside 0..{N_VERTICES - 1}; "
                         f"download flame2023.pkl again from {FLAME_URL}.")
    return FlameAssets(
        v_template=arrays["v_template"].astype(np.float64, copy=False),
        shapedirs=arrays["shapedirs"].astype(np.float64, copy=False),
        posedirs=arrays["posedirs"].astype(np.float64, copy=False),
        j_regressor=arrays["J_regressor"].astype(np.float64, copy=False),
        weights=arrays["weights"].astype(np.float64, copy=False),
        parents=parents,
        faces=faces,
        folder=folder,
        is_standin=STANDIN_KEY in raw,
        **_load_embeddings(folder),
    )


def _model_array(raw: dict, name: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    if name not in raw:
        raise FlameError(f"{path} has no {name!r} array, so it is not a FLAME 2023 model; "
                         f"download flame2023.pkl from {FLAME_URL}.")
    array = to_numpy(raw[name], name, path)
    if array.shape != shape:
        raise FlameError(f"{path} has {name!r} of shape {array.shape}, expected {shape} for FLAME 2023; "
                         f"download flame2023.pkl from {FLAME_URL}.")
    return array


def _load_embeddings(folder: Path) -> dict[str, np.ndarray]:
    """Static (and dynamic, when present) landmark embeddings; empty when the static file is missing."""
    static_path = folder / STATIC_EMBEDDING_FILE
    if not static_path.is_file():
        return {}
    try:
        static = load_pickle(static_path)
        embeddings = {
            "static_face_idx": np.asarray(static["lmk_face_idx"]).astype(np.int64).reshape(-1),
            "static_bary": np.asarray(static["lmk_b_coords"], dtype=np.float64).reshape(-1, 3),
        }
    except Exception as error:
        raise FlameError(f"{static_path} is not a readable landmark embedding ({type(error).__name__}: "
                         f"{error}); download it again with the FLAME model from {FLAME_URL}.") from error
    _check_landmark_faces(embeddings["static_face_idx"], static_path)
    dynamic_path = folder / DYNAMIC_EMBEDDING_FILE
    if dynamic_path.is_file():
        embeddings.update(_load_dynamic_embedding(dynamic_path))
    return embeddings


def _load_dynamic_embedding(path: Path) -> dict[str, np.ndarray]:
    try:
        stored = _load_npy_dict(path)
        face_idx = np.asarray(stored["lmk_face_idx"]).astype(np.int64)
        bary = np.asarray(stored["lmk_b_coords"], dtype=np.float64)
    except Exception as error:
        raise FlameError(f"{path} is not a readable dynamic landmark embedding ({type(error).__name__}: "
                         f"{error}); download it again with the FLAME model from {FLAME_URL}.") from error
    if face_idx.shape != (N_DYNAMIC_ANGLES, N_CONTOUR_LANDMARKS) or bary.shape != face_idx.shape + (3,):
        raise FlameError(f"{path} has contour embeddings of shape {face_idx.shape}, expected "
                         f"({N_DYNAMIC_ANGLES}, {N_CONTOUR_LANDMARKS}); download it again from {FLAME_URL}.")
    _check_landmark_faces(face_idx, path)
    return {"dynamic_face_idx": face_idx, "dynamic_bary": bary}


def _load_npy_dict(path: Path) -> Any:
    """The dictionary pickled inside an object-dtype .npy file, read with the chumpy-free unpickler."""
    with open(path, "rb") as file:
        major, _ = np.lib.format.read_magic(file)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        _, _, dtype = read_header(file)
        if not dtype.hasobject:
            raise ValueError("expected a pickled dictionary, found a plain array")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            array = ChumpyFreeUnpickler(file, encoding="latin1").load()
    return array[()] if isinstance(array, np.ndarray) and array.ndim == 0 else array


def _check_landmark_faces(face_idx: np.ndarray, path: Path) -> None:
    if face_idx.size and (face_idx.min() < 0 or face_idx.max() >= N_FACES):
        raise FlameError(f"{path} refers to faces outside 0..{N_FACES - 1}; "
                         f"download it again with the FLAME model from {FLAME_URL}.")
