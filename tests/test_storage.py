"""The store layer: one StoreError sentence naming the store (and group) for whatever cannot be opened,
completion flags, sequence selection and consolidated metadata, on real zarr stores on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

from nersemble_zarr import schema, storage
from nersemble_zarr.errors import StoreError

GROUP = schema.sequence_group("nvs", 388, "GLASSES")


def one_sentence(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and message.endswith(".") and ". " not in message, message
    return message


@pytest.fixture
def store(tmp_path):
    """A store of ours with one sequence group holding a per-camera completion flag of its images."""
    path = tmp_path / "store.zarr"
    storage.prepare_store(path)
    group = zarr.open_group(path, mode="a").require_group(GROUP)
    group.create_array(schema.converted_flag(schema.IMAGES), shape=(3,), dtype=bool, fill_value=False)
    group.create_array(schema.converted_flag(schema.ALPHA), shape=(3,), dtype=bool, fill_value=False)
    return path


@pytest.mark.parametrize("open_node", [
    lambda path: storage.open_group(path),
    lambda path: storage.open_group(path, GROUP),
    lambda path: storage.open_array(path, f"{GROUP}/images"),
    lambda path: storage.open_dataset(path, GROUP),
    lambda path: storage.open_tree(path),
    lambda path: storage.read_root_attrs(path),
], ids=["root", "group", "array", "dataset", "tree", "root attrs"])
@pytest.mark.parametrize("make, expected", [
    (lambda path: path.write_text("not a store"), "is not a zarr store: it is a regular file"),
    (lambda path: (path.mkdir(), (path / "notes.txt").write_text("hello")), "is not a zarr store"),
    (lambda path: None, "does not exist, so it is not a zarr store"),
], ids=["file", "other folder", "missing"])
def test_a_path_without_a_store_is_one_sentence_naming_it(tmp_path, open_node, make, expected):
    path = tmp_path / "store.zarr"
    make(path)
    with pytest.raises(StoreError) as error:
        open_node(path)
    message = one_sentence(error)
    assert message.startswith(str(path)) and expected in message


@pytest.mark.parametrize("open_node, kind, path", [
    (lambda store: storage.open_group(store, "nvs/388/NOPE"), "group", "nvs/388/NOPE"),
    (lambda store: storage.open_dataset(store, "level_2/" + GROUP), "group", "level_2/" + GROUP),
    (lambda store: storage.open_array(store, f"{GROUP}/images"), "array", f"{GROUP}/images"),
    (lambda store: storage.open_array(store, GROUP), "array", GROUP),  # a group, not an array
], ids=["group", "dataset", "array", "group as array"])
def test_a_missing_node_of_a_store_names_the_store_and_the_node(store, open_node, kind, path):
    with pytest.raises(StoreError) as error:
        open_node(store)
    message = one_sentence(error)
    assert f"The store {store} has no readable {kind} {path};" in message


def test_a_foreign_or_newer_store_is_refused_by_read_root_attrs(tmp_path):
    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(foreign, mode="w", zarr_format=3)
    with pytest.raises(StoreError, match="not one written by nersemble_zarr"):
        storage.read_root_attrs(foreign)
    zarr.open_group(foreign, mode="r+").attrs[schema.FORMAT_ATTR] = schema.FORMAT_VERSION + 1
    with pytest.raises(StoreError, match="newer than"):
        storage.read_root_attrs(foreign)


def test_group_exists_and_remove_group(store):
    assert storage.group_exists(store, GROUP) and storage.group_exists(store, "nvs")
    assert not storage.group_exists(store, "nvs/389")
    storage.remove_group(store, "nvs/389")  # nothing to remove: no error
    storage.remove_group(store, "nvs")
    assert not storage.group_exists(store, "nvs") and not (store / "nvs").exists()
    assert storage.group_exists(store, "")


def test_camera_flags_are_written_one_camera_at_a_time(store):
    assert not storage.camera_flags(store, GROUP, has_alpha=True).any()
    storage.mark_camera_written(store, GROUP, schema.IMAGES, 1)
    np.testing.assert_array_equal(storage.camera_flags(store, GROUP, has_alpha=False), [False, True, False])
    assert not storage.camera_flags(store, GROUP, has_alpha=True).any()  # alpha of camera 1 still missing
    storage.mark_camera_written(store, GROUP, schema.ALPHA, 1)
    np.testing.assert_array_equal(storage.camera_flags(store, GROUP, has_alpha=True), [False, True, False])


def test_written_cameras_of_an_opened_dataset():
    flags = np.array([True, False])
    dataset = xr.Dataset(
        {schema.IMAGES: ((schema.SERIAL, schema.TIMESTEP), np.zeros((2, 1), np.uint8))},
        coords={schema.converted_flag(schema.IMAGES): (schema.SERIAL, flags)},
    )
    np.testing.assert_array_equal(storage.written_cameras(dataset), flags)
    assert not storage.written_cameras(dataset.drop_vars(schema.IMAGES)).any()  # no frames: none written


def test_skeleton_and_converted_marks(store):
    assert not storage.is_skeleton_complete(storage.open_group(store, GROUP))
    storage.mark_skeleton_complete(store, GROUP)
    assert storage.is_skeleton_complete(storage.open_group(store, GROUP))
    storage.mark_converted(store, GROUP)
    attrs = storage.open_group(store, GROUP).attrs
    assert attrs[schema.CONVERTED_ATTR] is True and schema.SKELETON_ATTR not in attrs


def test_sequence_selection(store, caplog):
    root = zarr.open_group(store, mode="a")
    storage.mark_skeleton_complete(store, GROUP)
    for name in ("EXP-1-head", "FREE"):
        root.require_group(schema.sequence_group("mono_flame_avatar", 393, name)).attrs["converted"] = True
    root.require_group(schema.sequence_group("mono_flame_avatar", 393, "EXP-2-eyes"))  # a skeleton half-written
    root.require_group(schema.level_group(2, "nvs", 388, "GLASSES"))
    assert storage.sequence_keys(store) == [
        ("mono_flame_avatar", 393, "EXP-1-head"), ("mono_flame_avatar", 393, "FREE"), ("nvs", 388, "GLASSES")]
    assert "Skipped 1 sequence(s) of" in caplog.text and "mono_flame_avatar/393/EXP-2-eyes" in caplog.text
    assert ("mono_flame_avatar", 393, "EXP-2-eyes") in storage.sequence_keys(store, complete_only=False)
    assert storage.select_sequences(store, participants=[388]) == [("nvs", 388, "GLASSES")]
    assert storage.select_sequences(store, benchmark="mono_flame_avatar", sequences=["FREE"]) == [
        ("mono_flame_avatar", 393, "FREE")]
    assert storage.select_sequences(store, benchmark="nvs", participants=[393]) == []
    assert storage.existing_levels(store, "nvs", 388, "GLASSES") == [2]
    assert storage.existing_levels(store, "mono_flame_avatar", 393, "FREE") == []


def test_root_attribute_writes_keep_the_consolidated_document(store):
    storage.consolidate(store)
    storage.record_benchmarks(store, ["nvs"])
    storage.record_benchmarks(store, ["nvs", "mono_flame_avatar"])
    document = json.loads((store / "zarr.json").read_text())
    assert document["attributes"][schema.BENCHMARKS_ATTR] == ["nvs", "mono_flame_avatar"]
    assert GROUP in document["consolidated_metadata"]["metadata"]


def test_refresh_consolidated_metadata_only_where_there_is_some(store):
    zarr.open_group(store, mode="a").require_group("nvs/389/GLASSES")
    storage.refresh_consolidated_metadata(store)  # never consolidated: stays so
    assert json.loads((store / "zarr.json").read_text()).get("consolidated_metadata") is None
    storage.consolidate(store)
    zarr.open_group(store, mode="a", use_consolidated=False).require_group("nvs/390/GLASSES")
    storage.refresh_consolidated_metadata(store)
    listed = json.loads((store / "zarr.json").read_text())["consolidated_metadata"]["metadata"]
    assert "nvs/390/GLASSES" in listed


def test_removing_a_top_level_group_keeps_the_consolidated_document_in_step(store):
    storage.consolidate(store)
    zarr.open_group(store, mode="a", use_consolidated=False).require_group("mono_flame_avatar/393/FREE")
    storage.remove_group(store, "mono_flame_avatar")  # created after the document was written
    storage.remove_group(store, "nvs")  # listed in the document
    assert not (store / "mono_flame_avatar").exists() and not (store / "nvs").exists()
    assert json.loads((store / "zarr.json").read_text())["consolidated_metadata"]["metadata"] == {}
    assert storage.sequence_keys(store) == []
