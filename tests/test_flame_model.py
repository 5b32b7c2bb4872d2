"""Loading FLAME files without chumpy, error messages, and the stand-in model's properties."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from nersemble_zarr.errors import FlameError
from nersemble_zarr.flame.model import (
    FLAME_DIR_ENV, MODEL_FILE, STATIC_EMBEDDING_FILE, load_flame_assets, load_pickle, resolve_flame_dir, to_numpy,
)
from nersemble_zarr.flame.standin import JOINT_POSITIONS, STANDIN_NOTICE, standin_model, write_standin_flame
from nersemble_zarr.synthetic.head import HEAD_CENTER, HEAD_RADII


def test_the_standin_pickle_holds_chumpy_objects_and_loading_never_imports_chumpy(standin_dir):
    assert b"chumpy.ch\nCh\n" in (standin_dir / MODEL_FILE).read_bytes()
    check = (
        "import sys; from nersemble_zarr.flame.model import load_flame_assets; "
        f"load_flame_assets({str(standin_dir)!r}); print(sorted(m for m in sys.modules if m.startswith('chumpy')))"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_chumpy_free_loader_reads_the_same_arrays_as_the_plain_file(standin_dir, plain_standin_dir):
    with_chumpy = load_flame_assets(standin_dir)
    plain = load_flame_assets(plain_standin_dir)
    expected = standin_model(seed=0)
    np.testing.assert_array_equal(with_chumpy.shapedirs, expected["shapedirs"])
    np.testing.assert_array_equal(with_chumpy.j_regressor, expected["J_regressor"].toarray())
    for name in ("v_template", "shapedirs", "posedirs", "j_regressor", "weights", "parents", "faces"):
        np.testing.assert_array_equal(getattr(with_chumpy, name), getattr(plain, name))
    assert with_chumpy.shapedirs.shape == (5023, 3, 400)
    assert with_chumpy.parents.tolist() == [-1, 0, 1, 1, 1]
    assert with_chumpy.is_standin and "NOT FLAME" in with_chumpy.description


def test_chumpy_objects_become_stand_ins_keeping_their_array(standin_dir):
    raw = load_pickle(standin_dir / MODEL_FILE)
    assert raw["shapedirs"].chumpy_class == "chumpy.ch.Ch"
    np.testing.assert_array_equal(raw["J"].state["x"], JOINT_POSITIONS)
    assert raw["nersemble_zarr_standin_notice"] == STANDIN_NOTICE


def test_loader_refuses_classes_outside_numpy_and_scipy(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (tmp_path / MODEL_FILE).write_bytes(pickle.dumps({"v_template": Exploit()}))
    with pytest.raises(FlameError, match="not a readable FLAME pickle"):
        load_flame_assets(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_missing_model_names_the_path_and_where_to_get_it(tmp_path):
    with pytest.raises(FlameError) as error:
        load_flame_assets(tmp_path / "nowhere")
    message = str(error.value)
    assert str(tmp_path / "nowhere" / MODEL_FILE) in message and "https://flame.is.tue.mpg.de" in message
    assert message.count(". ") == 0  # one sentence


def test_garbage_model_file_is_a_flame_error(tmp_path):
    (tmp_path / MODEL_FILE).write_bytes(b"this is not a pickle")
    with pytest.raises(FlameError, match=str(tmp_path / MODEL_FILE)):
        load_flame_assets(tmp_path)


@pytest.fixture(scope="module")
def standin_dict():
    return standin_model(seed=3)


@pytest.mark.parametrize("change, message", [
    (lambda model: model.pop("posedirs"), "has no 'posedirs' array"),
    (lambda model: model.update(weights=np.ones((5023, 4))), r"'weights' of shape \(5023, 4\)"),
    (lambda model: model.update(f=np.full((9976, 3), 6000, np.uint32)), "face indices outside"),
])
def test_malformed_model_arrays_are_named(tmp_path, standin_dict, change, message):
    model = dict(standin_dict)  # a shallow copy: the changes replace or drop entries, never edit arrays
    change(model)
    (tmp_path / MODEL_FILE).write_bytes(pickle.dumps(model, protocol=2))
    with pytest.raises(FlameError, match=message):
        load_flame_assets(tmp_path)


def test_a_chumpy_expression_without_value_cannot_be_read(tmp_path):
    chumpy_expression = (
        b"\x80\x02}q\x00X\x09\x00\x00\x00shapedirsq\x01cchumpy.ch_ops\nadd\nq\x02)\x81q\x03}q\x04X\x01\x00\x00\x00a"
        b"K\x01sbs."
    )
    path = tmp_path / MODEL_FILE
    path.write_bytes(chumpy_expression)
    stood_in = load_pickle(path)["shapedirs"]
    assert stood_in.chumpy_class == "chumpy.ch_ops.add" and stood_in.state == {"a": 1}
    with pytest.raises(FlameError, match=f"{path} stores 'shapedirs' as a chumpy expression"):
        to_numpy(stood_in, "shapedirs", path)


def test_flame_dir_comes_from_argument_then_environment_then_default(monkeypatch, tmp_path):
    monkeypatch.setenv(FLAME_DIR_ENV, str(tmp_path / "env"))
    assert resolve_flame_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_flame_dir() == tmp_path / "env"
    monkeypatch.delenv(FLAME_DIR_ENV)
    assert resolve_flame_dir() == resolve_flame_dir("~/.cache/FLAME")


def test_without_embeddings_landmarks_are_unavailable_and_say_where_to_put_them(tmp_path):
    write_standin_flame(tmp_path, seed=0, embeddings=False)
    assets = load_flame_assets(tmp_path)
    assert not assets.has_landmarks
    from nersemble_zarr.flame.lbs import FlameModel

    model = FlameModel(assets, device="cpu")
    assert model.n_landmarks == 0
    with pytest.raises(FlameError, match=STATIC_EMBEDDING_FILE):
        model.require_landmarks()


def test_broken_embedding_is_a_flame_error(tmp_path):
    write_standin_flame(tmp_path, seed=0)
    (tmp_path / STATIC_EMBEDDING_FILE).write_bytes(b"\x80\x02}q\x00.")  # an empty dict
    with pytest.raises(FlameError, match=STATIC_EMBEDDING_FILE):
        load_flame_assets(tmp_path)


def test_standin_geometry_is_a_valid_rigged_head_on_the_synthetic_ellipsoid(standin_dir):
    assets = load_flame_assets(standin_dir)
    on_surface = (((assets.v_template - HEAD_CENTER) / HEAD_RADII) ** 2).sum(axis=1)
    np.testing.assert_allclose(on_surface, 1.0, atol=1e-12)
    np.testing.assert_allclose(assets.j_regressor @ assets.v_template, JOINT_POSITIONS, atol=1e-9)
    np.testing.assert_allclose(assets.weights.sum(axis=1), 1.0, atol=1e-12)
    assert (assets.weights > 0).all()
    assert assets.faces.shape == (9976, 3) and assets.faces.max() < 5023
    assert (np.diff(np.sort(assets.faces, axis=1), axis=1) > 0).all()  # three distinct corners
    corners = assets.v_template[assets.faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert (np.einsum("ij,ij->i", normals, corners.mean(axis=1)) > 0).all()  # all facing outwards
    assert assets.static_face_idx.shape == (51,) and assets.dynamic_face_idx.shape == (79, 17)
    np.testing.assert_allclose(assets.static_bary.sum(axis=1), 1.0)


def test_standin_is_deterministic_per_seed():
    first, again, other = standin_model(seed=5), standin_model(seed=5), standin_model(seed=6)
    np.testing.assert_array_equal(first["shapedirs"], again["shapedirs"])
    np.testing.assert_array_equal(first["f"], again["f"])
    assert not np.array_equal(first["v_template"], other["v_template"])
    assert first["f"].dtype == np.uint32 and first["v_template"].dtype == np.float64
