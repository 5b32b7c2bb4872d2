"""Reading PLY and OBJ meshes as trimesh writes them, and refusing damaged ones with a reason."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from nersemble_zarr.flame.mesh_io import ply_bytes
from nersemble_zarr.submission.meshfile import MeshFileError, read_obj, read_ply, server_mesh_size, server_vertex_count

RNG = np.random.default_rng(3)
VERTICES = RNG.normal(size=(30, 3)).astype(np.float32)
FACES = RNG.integers(0, 30, size=(40, 3))


@pytest.mark.parametrize("encoding", ["binary", "ascii"])
def test_trimesh_ply_files_read_back_exactly(encoding) -> None:
    data = trimesh.Trimesh(VERTICES, FACES, process=False).export(file_type="ply", encoding=encoding)
    vertices, faces = read_ply(data)
    np.testing.assert_allclose(vertices, VERTICES, rtol=1e-6)
    assert np.array_equal(faces, FACES)


def test_our_ply_and_quads_and_obj() -> None:
    vertices, faces = read_ply(ply_bytes(VERTICES, FACES.astype(np.int32)))
    assert np.array_equal(vertices, VERTICES) and np.array_equal(faces, FACES)
    quad = b"v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1/1 2/2 3/3 4/4\nf -4 -3 -2\n"
    vertices, faces = read_obj(quad)
    assert vertices.shape == (4, 3) and faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 2]]


@pytest.mark.parametrize("data,reason", [
    (b"solid stl", "not a PLY file"),
    (ply_bytes(VERTICES, FACES.astype(np.int32))[:-7], "truncated"),
    (b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float q\nend_header\n" + bytes(4), "no x, y, z number properties"),
    (b"ply\nformat binary_little_endian 1.0\nelement junk 999999999\nend_header\n", "has no properties"),
    (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n",
     "truncated"),
])
def test_damaged_ply_is_refused_with_a_reason(data, reason) -> None:
    with pytest.raises(MeshFileError, match=reason):
        read_ply(data)


def test_server_mesh_size_is_what_trimesh_builds_even_with_nan_and_no_faces() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        vertices = rng.integers(0, 3, (n, 3)).astype(np.float64) / 2  # coarse: many coincide
        vertices[rng.integers(0, n, int(rng.integers(0, 3)))] = rng.choice([np.nan, np.inf])
        faces = rng.integers(0, n, (int(rng.integers(0, 6)), 3))
        mesh = trimesh.Trimesh(vertices, faces)
        assert server_mesh_size(vertices, faces) == (len(mesh.vertices), len(mesh.faces)), (vertices, faces)


def test_server_vertex_count_drops_unused_and_merges_coincident_vertices() -> None:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [5, 5, 5]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [0, 1, 3]])
    assert server_vertex_count(vertices, faces) == 3
    assert len(trimesh.Trimesh(vertices, faces).vertices) == 3  # what the server's reader keeps


def test_mutated_headers_either_read_or_raise_a_mesh_file_error() -> None:
    """300 seeded mutations of the headers of a binary and an ASCII PLY: never another exception."""
    rng = np.random.default_rng(11)
    words = [b"uchar", b"int", b"float", b"list", b"vertex", b"face", b"99999999999", b"-1", b"ascii", b"x",
             b"binary_big_endian", b"property", b"element", b"vertex_indices", b"\n"]
    originals = [ply_bytes(VERTICES, FACES.astype(np.int32)),
                 trimesh.Trimesh(VERTICES, FACES, process=False).export(file_type="ply", encoding="ascii")]
    for attempt in range(300):
        data = bytearray(originals[attempt % 2])
        end = data.find(b"end_header")
        for _ in range(rng.integers(1, 4)):
            position = int(rng.integers(end))
            if rng.integers(2):
                data[position:position] = words[rng.integers(len(words))] + b" "
            else:
                del data[position: position + int(rng.integers(1, 8))]
        try:
            read_ply(bytes(data))
        except MeshFileError:
            pass
