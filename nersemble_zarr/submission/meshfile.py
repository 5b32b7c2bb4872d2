"""Reading triangle meshes from PLY (binary or ASCII, as trimesh writes and reads them) and OBJ bytes.

Only what a submission needs: vertex positions and polygon faces (fan-triangulated). Any malformation raises
a MeshFileError whose message says what is wrong; callers prefix the file's name.
"""

from __future__ import annotations

import numpy as np

from ..errors import shown

PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_FORMATS = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": None}
MAX_HEADER_BYTES = 1 << 16
MAX_OBJ_INDEX = 2**31 - 1  # faces are stored as int32
MERGE_DIGITS = 8  # trimesh merges vertices equal to 1e-8 when it builds a mesh (its tol.merge)


class MeshFileError(ValueError):
    """A mesh file that cannot be read; the message says why (without the file's name)."""


def _triangulated(polygons: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Faces (F, 3) int64 from polygons of 3 or more corners (an (F, k) array or a list), fanned as trimesh does."""
    if isinstance(polygons, np.ndarray):
        if polygons.ndim != 2 or (len(polygons) and polygons.shape[1] < 3):
            raise MeshFileError("a face has fewer than 3 corners")
        if not len(polygons):
            return np.zeros((0, 3), np.int64)
        fans = [polygons[:, [0, i, i + 1]] for i in range(1, polygons.shape[1] - 1)]
        return np.concatenate(fans).astype(np.int64)
    if any(len(p) < 3 for p in polygons):
        raise MeshFileError("a face has fewer than 3 corners")
    triangles = [np.stack([np.repeat(p[0], len(p) - 2), p[1:-1], p[2:]], axis=1) for p in polygons]
    return np.concatenate(triangles).astype(np.int64) if triangles else np.zeros((0, 3), np.int64)


def _header(data: bytes) -> tuple[str | None, list[tuple[str, int, list[tuple]]], int]:
    """Format byte order (None for ASCII), elements (name, count, properties) and the body's offset."""
    end = data.find(b"end_header", 0, MAX_HEADER_BYTES)
    if not data.startswith(b"ply") or end < 0:
        raise MeshFileError("it is not a PLY file (no 'ply' ... 'end_header' header)")
    body = data.index(b"\n", end) + 1 if b"\n" in data[end:end + 20] else len(data)
    order, elements = "missing", []
    for line in data[:end].decode("ascii", "replace").splitlines()[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2 and words[1] in _FORMATS:
            order = _FORMATS[words[1]]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property" and elements and len(words) == 5 and words[1] == "list":
            if words[2] not in PLY_TYPES or words[3] not in PLY_TYPES:
                raise MeshFileError(f"its header has an unknown property type in {line.strip()!r}")
            if PLY_TYPES[words[2]].startswith("f"):
                raise MeshFileError(f"its list length type {words[2]!r} in {line.strip()!r} is not an integer type")
            elements[-1][2].append((words[4], PLY_TYPES[words[2]], PLY_TYPES[words[3]]))
        elif words[0] == "property" and elements and len(words) == 3 and words[1] in PLY_TYPES:
            elements[-1][2].append((words[2], PLY_TYPES[words[1]]))
        else:
            raise MeshFileError(f"its header line {line.strip()[:60]!r} is not PLY")
    if order == "missing":
        raise MeshFileError("its header names no known format (ascii, binary_little_endian, binary_big_endian)")
    for name, _, properties in elements:
        names = [p[0] for p in properties]
        if len(set(names)) != len(names):
            raise MeshFileError(f"its element {name!r} names a property twice")
    empty = [name for name, count, properties in elements if count and not properties]
    if empty:
        raise MeshFileError(f"its element {empty[0]!r} has no properties")
    return order, elements, body


def read_ply(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and triangle faces (F, 3) int64 of a PLY file's bytes."""
    order, elements, offset = _header(data)
    tokens = data[offset:].split() if order is None else None
    position = 0
    vertices, faces = np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    for name, count, properties in elements:
        lists = [p for p in properties if len(p) == 3]
        _check_declared(name, count, properties, order, len(tokens) - position if order is None else len(data) - offset)
        if order is None:
            values, position = _ascii_element(tokens, position, count, properties)
        elif not lists:
            dtype = np.dtype([(p[0], order + p[1]) for p in properties])
            if offset + dtype.itemsize * count > len(data):
                raise MeshFileError(f"it ends inside its {name} element (truncated)")
            table = np.frombuffer(data, dtype, count, offset)
            values = {field: table[field] for field in dtype.names}
            offset += dtype.itemsize * count
        else:
            values, offset = _uniform_faces(data, offset, count, properties, order) or _binary_list_element(
                data, offset, count, properties, order
            )
        if name == "vertex":
            if not all(isinstance(values.get(a), np.ndarray) and values[a].ndim == 1 for a in "xyz"):
                raise MeshFileError("its vertices have no x, y, z number properties")
            vertices = np.stack([values[axis].astype(np.float64) for axis in "xyz"], axis=1)
        elif name == "face":
            corners = [p for p in lists if p[0] in ("vertex_indices", "vertex_index")]
            if not corners:
                raise MeshFileError("its faces have no vertex_indices list")
            if corners[0][2].startswith("f"):
                raise MeshFileError("its face indices are not integers")
            corners = [p[0] for p in corners]
            found = values[corners[0]]
            faces = _triangulated(found if isinstance(found, np.ndarray) and found.ndim == 2 else list(found))
    if order is None and position > len(tokens):
        raise MeshFileError("it ends before its last element (truncated)")
    return vertices, faces


def _check_declared(name: str, count: int, properties: list[tuple], order: str | None, available: int) -> None:
    """Refuse an element whose declared count cannot fit in what is left of the file (bytes, or ASCII tokens),
    before anything is allocated or looped over: each record takes at least one token per property, or its
    scalars' and list lengths' bytes."""
    if order is None:
        least = len(properties)
    else:
        least = sum(np.dtype(p[1]).itemsize for p in properties)
    if count * least > available:
        unit = "values" if order is None else "bytes"
        raise MeshFileError(f"it declares {count} {name} records, which need at least {count * least} {unit}; "
                            f"it holds {available} (truncated, or a false count)")


def _uniform_faces(data: bytes, offset: int, count: int, properties: list[tuple], order: str):
    """The fast path for an element of one list whose every record has the first record's length (triangles)."""
    if len(properties) != 1 or count == 0:
        return None
    name, count_type, item_type = properties[0]
    first = np.frombuffer(data, order + count_type, 1, offset) if offset < len(data) else np.zeros(0)
    if len(first) == 0 or int(first[0]) < 1:
        return None
    dtype = np.dtype([("n", order + count_type), ("items", order + item_type, (int(first[0]),))])
    if offset + dtype.itemsize * count > len(data):
        return None
    table = np.frombuffer(data, dtype, count, offset)
    if np.any(table["n"] != first[0]):
        return None
    return {name: table["items"].astype(np.int64)}, offset + dtype.itemsize * count


def _binary_list_element(data: bytes, offset: int, count: int, properties: list[tuple], order: str):
    """Records of an element with list properties, one by one (PLY puts no length on a record)."""
    records: dict[str, list] = {p[0]: [] for p in properties}
    for _ in range(count):
        for prop in properties:
            if len(prop) == 2:
                dtype = np.dtype(order + prop[1])
                if offset + dtype.itemsize > len(data):
                    raise MeshFileError("it ends inside an element (truncated)")
                records[prop[0]].append(np.frombuffer(data, dtype, 1, offset)[0])
                offset += dtype.itemsize
                continue
            count_type, item_type = np.dtype(order + prop[1]), np.dtype(order + prop[2])
            if offset + count_type.itemsize > len(data):
                raise MeshFileError("it ends inside a face (truncated)")
            n = _list_length(np.frombuffer(data, count_type, 1, offset)[0])
            offset += count_type.itemsize
            if offset + n * item_type.itemsize > len(data):
                raise MeshFileError("it ends inside a face (truncated)")
            records[prop[0]].append(np.frombuffer(data, item_type, n, offset).astype(np.int64))
            offset += n * item_type.itemsize
    return _as_records(records), offset


def _list_length(value) -> int:
    """A list's declared length, refused when negative (a signed length type) instead of read as 'all'."""
    if value < 0:
        raise MeshFileError(f"a list declares {int(value)} items")
    return int(value)


def _ascii_element(tokens: list[bytes], position: int, count: int, properties: list[tuple]):
    records: dict[str, list] = {p[0]: [] for p in properties}
    try:
        for _ in range(count):
            for prop in properties:
                if len(prop) == 2:
                    records[prop[0]].append(float(tokens[position]))
                    position += 1
                else:
                    n = _list_length(_ascii_value(tokens[position], prop[1]))
                    items = [_ascii_value(t, prop[2]) for t in tokens[position + 1: position + 1 + n]]
                    if len(items) != n:
                        raise IndexError
                    records[prop[0]].append(np.array(items, dtype=prop[2]))
                    position += 1 + n
    except MeshFileError:
        raise
    except (IndexError, ValueError) as error:
        raise MeshFileError("its ASCII body is truncated or holds a non-number") from error
    return _as_records(records), position


def _ascii_value(token: bytes, type_code: str) -> int | float:
    """One ASCII value of a list, refused when it does not fit its declared type (a 23-digit index)."""
    if type_code.startswith("f"):
        return float(token)
    value, limits = int(token), np.iinfo(type_code)
    if not limits.min <= value <= limits.max:
        raise MeshFileError(f"its value {shown(value)} does not fit the type {np.dtype(type_code)} it declares")
    return value


def _as_records(records: dict[str, list]) -> dict[str, np.ndarray | list]:
    return {name: np.array(values) if values and np.ndim(values[0]) == 0 else values for name, values in records.items()}


def read_obj(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and triangle faces (F, 3) int64 of an OBJ file's bytes (``v`` and ``f`` lines)."""
    vertices: list[list[float]] = []
    polygons: list[np.ndarray] = []
    try:
        for line in data.decode("utf-8", "replace").splitlines():
            words = line.split()
            if not words:
                continue
            if words[0] == "v":
                vertices.append([float(w) for w in words[1:4]])
                if len(vertices[-1]) != 3:
                    raise ValueError
            elif words[0] == "f":
                corners = [int(w.split("/")[0]) for w in words[1:]]
                if any(abs(corner) > MAX_OBJ_INDEX for corner in corners):
                    far = max(corners, key=abs)
                    raise MeshFileError(f"a face refers to vertex {shown(far)}, beyond any mesh this reader takes "
                                        f"(at most {MAX_OBJ_INDEX} vertices)")
                polygons.append(np.array([len(vertices) + c if c < 0 else c - 1 for c in corners], dtype=np.int64))
    except MeshFileError:
        raise
    except ValueError as error:
        raise MeshFileError("a 'v' or 'f' line is not numbers") from error
    return np.array(vertices, dtype=np.float64).reshape(-1, 3), _triangulated(polygons)


def read_mesh_bytes(data: bytes, suffix: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and triangle faces of a ``.ply`` or ``.obj`` file's bytes."""
    return read_ply(data) if suffix.lower() == ".ply" else read_obj(data)


def server_vertex_count(vertices: np.ndarray, faces: np.ndarray) -> int:
    """The vertex count of the mesh trimesh builds from these arrays (what the SVFR server compares with
    FLAME's 5023); see ``server_mesh_size``."""
    return server_mesh_size(vertices, faces)[0]


def server_mesh_size(vertices: np.ndarray, faces: np.ndarray) -> tuple[int, int]:
    """(vertices, faces) of the mesh trimesh builds from these arrays (face indices in range): vertices that
    are not finite go with the faces using them, then vertices no face uses are dropped (unless no face is
    left) and coincident ones merged."""
    vertices, faces = np.asarray(vertices, dtype=np.float64), np.asarray(faces).reshape(-1, 3)
    finite = np.isfinite(vertices).all(axis=1)
    faces = faces[finite[faces].all(axis=1)]
    if len(faces):
        kept = np.flatnonzero(np.bincount(faces.ravel(), minlength=len(vertices)))
    else:
        kept = np.flatnonzero(finite)
    rounded = np.round(vertices[kept], MERGE_DIGITS) + 0.0  # -0 -> 0
    rows = np.ascontiguousarray(rounded).view(np.dtype((np.void, rounded.dtype.itemsize * 3)))
    return len(np.unique(rows)), len(faces)
