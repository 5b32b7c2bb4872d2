"""engine="nersemble": the same values as engine="zarr" for every variable and selection, eager and with dask,
frames read straight from their shards where the direct path applies and through zarr elsewhere (object
storage, JPEG XL), and a damaged or missing chunk is the same sentence as on the direct path."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from nersemble_zarr import schema
from nersemble_zarr.chunk_reader import stored_frames
from nersemble_zarr.codecs import JpegXLCodec
from nersemble_zarr.errors import StoreError
from nersemble_zarr.xarray_backend import FrameBackendArray
from test_object_storage import BUCKET, s3_endpoint  # noqa: F401 - the S3 server fixture (moto on loopback)

GROUPS = ("nvs/388/GLASSES", "mono_flame_avatar/393/EXP-1-head")
# Selections of a (serial, timestep, y, x[, channel]) frame array: integers, slices with steps (negative too),
# integer arrays (outer), pointwise (vectorized) and crops of the trailing axes.
SELECTIONS = [
    {"serial": 0, "timestep": 1},
    {"serial": slice(None, None, 2), "timestep": slice(1, 5, 3)},
    {"serial": [2, 0], "timestep": [4, 1, 4]},
    {"serial": slice(None, None, -1), "timestep": -1, "y": slice(2, 9), "x": 3},
    {"serial": xr.DataArray([0, 1, 2], dims="p"), "timestep": xr.DataArray([5, 0, 3], dims="p")},
    {"timestep": slice(0, 0)},
]


def _direct(variable: xr.DataArray) -> bool:
    """Whether xarray's lazy wrappers of ``variable`` end in this backend's frame array."""
    data = variable.variable._data
    while not isinstance(data, FrameBackendArray) and hasattr(data, "array"):
        data = data.array
    return isinstance(data, FrameBackendArray)


def _outcome(read):
    """The value a read gives, or the sentence it fails with."""
    try:
        return np.asarray(read())
    except StoreError as error:
        return f"StoreError: {error}"


@pytest.mark.parametrize("chunks", [None, {}], ids=["eager", "dask"])
def test_every_variable_and_selection_equals_the_zarr_engine(converted, chunks):
    ours = xr.open_datatree(converted, engine="nersemble", chunks=chunks)
    theirs = xr.open_datatree(converted, engine="zarr", chunks=chunks)
    assert sorted(ours.groups) == sorted(theirs.groups)
    for group in GROUPS:
        mine, reference = ours[group].to_dataset(), theirs[group].to_dataset()
        assert list(mine.variables) == list(reference.variables) and mine.attrs == reference.attrs
        assert _direct(mine[schema.IMAGES]) and _direct(mine[schema.ALPHA]) if chunks is None else True
        for name in mine.variables:
            assert mine[name].dtype == reference[name].dtype and mine[name].dims == reference[name].dims, name
            assert mine[name].chunks == reference[name].chunks, name  # dask chunks = the stored chunks
            np.testing.assert_array_equal(mine[name].values, reference[name].values, err_msg=name)
        for name in (schema.IMAGES, schema.ALPHA):
            for selection in SELECTIONS:
                got, expected = mine[name].isel(selection).values, reference[name].isel(selection).values
                assert got.dtype == expected.dtype == np.uint8 and got.shape == expected.shape, (name, selection)
                np.testing.assert_array_equal(got, expected)
        serial, timestep = str(mine.serial[1].item()), int(mine.timestep[2])
        picked = mine.images.sel(serial=serial, timestep=timestep)
        np.testing.assert_array_equal(picked.values, reference.images.sel(serial=serial, timestep=timestep).values)


def test_open_dataset_of_one_group_and_a_distributed_cluster_read_the_same(converted):
    from dask.distributed import Client, LocalCluster

    group = GROUPS[0]
    mine = xr.open_dataset(converted, engine="nersemble", group=group, chunks={})
    reference = xr.open_dataset(converted, engine="zarr", group=group, chunks={})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster):
        total = mine.images.astype(np.int64).sum(("y", "x", "channel")).compute()
    np.testing.assert_array_equal(total.values, reference.images.astype(np.int64).sum(("y", "x", "channel")).values)


def _frame_store(tmp_path, codec: str, grey: bool = False, sharded: bool = True) -> tuple:
    """A one-array store laid out as convert lays frames out (one frame per chunk, shards along time)."""
    shape = (3, 6, 12, 10) if grey else (3, 6, 12, 10, 3)
    encoding = {
        "zstd": {"compressors": [ZstdCodec(level=1)]},
        "lz4": {"compressors": [BloscCodec(cname="lz4", clevel=1, shuffle="noshuffle", typesize=1)]},
        "jpegxl-lossless": {"serializer": JpegXLCodec(lossless=True, effort=1), "compressors": []},
    }[codec]
    dims = (schema.SERIAL, schema.TIMESTEP, schema.Y, schema.X, schema.CHANNEL)[: len(shape)]
    values = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    store = tmp_path / f"{codec}.zarr"
    array = zarr.create_array(store, name="images", shape=shape, dtype="uint8", chunks=(1, 1) + shape[2:],
                              shards=(1, 4) + shape[2:] if sharded else None, fill_value=0, dimension_names=dims,
                              **encoding)
    array[...] = values
    return store, values


@pytest.mark.parametrize(("codec", "grey", "sharded", "direct"), [
    ("zstd", False, True, True), ("lz4", False, True, True), ("zstd", True, True, True),
    ("lz4", False, False, True), ("jpegxl-lossless", False, True, False),
])
def test_each_codec_reads_the_stored_values_directly_or_through_zarr(tmp_path, codec, grey, sharded, direct):
    store, values = _frame_store(tmp_path, codec, grey, sharded)
    for chunks in (None, {}):
        dataset = xr.open_dataset(store, engine="nersemble", chunks=chunks)
        if chunks is None:
            assert _direct(dataset.images) == direct
        for selection in SELECTIONS[:5]:
            expected = xr.DataArray(values, dims=dataset.images.dims).isel(selection).values
            np.testing.assert_array_equal(dataset.images.isel(selection).values, expected)


def _damaged_copy(converted, tmp_path, damage) -> tuple:
    copy = tmp_path / "store.zarr"
    shutil.copytree(converted, copy)
    group = GROUPS[0]
    shard = copy / group / schema.IMAGES / "c" / "1" / "0" / "0" / "0" / "0"
    damage(shard)
    return copy, group


@pytest.mark.parametrize("damage", [
    lambda path: path.write_bytes(path.read_bytes()[:-7] + b"\xff" + path.read_bytes()[-6:]),  # the index's crc32c
    lambda path: path.write_bytes(path.read_bytes()[:40]),                                    # truncated
    lambda path: path.unlink(),                                                               # missing
], ids=["corrupt-index", "truncated", "missing"])
def test_a_damaged_or_missing_chunk_is_the_same_sentence_as_the_direct_path(converted, tmp_path, damage):
    store, group = _damaged_copy(converted, tmp_path, damage)
    direct = stored_frames(str(store), group, schema.IMAGES)
    serial = list(direct.serial_index)[1]
    timestep = list(direct.timestep_index)[0]
    expected = _outcome(lambda: direct.read(serial, timestep))
    for chunks in (None, {}):
        dataset = xr.open_dataset(store, engine="nersemble", group=group, chunks=chunks)
        got = _outcome(lambda: dataset.images.sel(serial=serial, timestep=timestep).values)
        if isinstance(expected, str):
            assert got == expected
        else:
            np.testing.assert_array_equal(got, expected)
    other = xr.open_dataset(store, engine="nersemble", group=group).images.isel(serial=0, timestep=0).values
    np.testing.assert_array_equal(other, xr.open_dataset(converted, engine="zarr", group=group).images[0, 0].values)


def test_a_store_on_object_storage_reads_through_zarr_with_the_same_values(synthetic_root, converted, s3_endpoint):
    """On the S3 server of tests/test_object_storage.py (moto on loopback) there is no direct path: zarr's values."""
    from nersemble_zarr.convert import convert

    url = f"s3://{BUCKET}/backend.zarr"
    convert(synthetic_root, url, benchmarks=("nvs",), workers=2)
    for chunks in (None, {}):
        remote = xr.open_dataset(url, engine="nersemble", group=GROUPS[0], chunks=chunks)
        local = xr.open_dataset(converted, engine="zarr", group=GROUPS[0], chunks=chunks)
        assert not _direct(remote.images)
        for name in (schema.IMAGES, schema.ALPHA, schema.TIMESTEP, "world_2_cam"):
            np.testing.assert_array_equal(remote[name].values, local[name].values)
        for selection in SELECTIONS[:5]:
            np.testing.assert_array_equal(remote.images.isel(selection).values, local.images.isel(selection).values)


def test_inline_array_as_the_docs_advise_for_single_frames_reads_the_zarr_engines_values(converted):
    """docs/store.md advises ``inline_array=True`` and one ``.sel`` call for single frames with dask: same values."""
    group = GROUPS[0]
    mine = xr.open_datatree(converted, engine="nersemble", chunks={}, inline_array=True)[group].to_dataset()
    reference = xr.open_dataset(converted, engine="zarr", group=group, chunks={})
    assert not any(name.startswith("original-") for name in mine.images.data.dask.layers)  # the array is inlined
    for selection in SELECTIONS[:5]:
        np.testing.assert_array_equal(mine.images.isel(selection).values, reference.images.isel(selection).values)
    serial, timestep = str(mine.serial[1].item()), int(mine.timestep[2])
    np.testing.assert_array_equal(mine.images.sel(serial=serial, timestep=timestep).values,
                                  reference.images.sel(serial=serial, timestep=timestep).values)
