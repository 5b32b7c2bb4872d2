"""The direct frame reader gives exactly what zarr gives, refuses damaged shards by name, and falls back to zarr."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

import nersemble_zarr.store as nz
from nersemble_zarr import schema
from nersemble_zarr.chunk_reader import FrameReader, frame_reader
from nersemble_zarr.codecs import JpegXLCodec
from nersemble_zarr.errors import StoreError
from nersemble_zarr.shard_writer import ShardWriter, ZarrFrameWriter, frame_sink

FRAME = (12, 10, 3)
COLOUR_DIMS = (schema.SERIAL, schema.TIMESTEP, schema.Y, schema.X, schema.CHANNEL)
ENCODINGS = {
    "zstd": {"compressors": [ZstdCodec(level=1)]},
    "lz4": {"compressors": [BloscCodec(cname="lz4", clevel=1, shuffle="noshuffle", typesize=1)]},
}


def frames(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Frame-like content: smooth gradients plus noise, so the compressors have work to do."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, int(np.prod(shape[-3:])) if len(shape) > 4 else int(np.prod(shape[-2:])))
    return (ramp.reshape((1, 1) + shape[2:]) + rng.integers(0, 50, size=shape)).astype(np.uint8)


def frame_array(tmp_path, name: str, *, codec: str = "zstd", sharded: bool = True, grey: bool = False,
                shape: tuple[int, ...] = (2, 6) + FRAME, values: np.ndarray | None = None) -> zarr.Array:
    """A frame array laid out as convert lays it out (one frame per chunk, shards along time)."""
    if grey:
        shape = shape[:4]
    dims = COLOUR_DIMS[: len(shape)]
    tail = tuple(shape[2:])
    array = zarr.create_array(
        tmp_path / "store.zarr", name=name, shape=shape, dtype="uint8", chunks=(1, 1) + tail,
        shards=(1, 4) + tail if sharded else None, fill_value=0, dimension_names=dims, **ENCODINGS[codec],
    )
    if values is None:
        values = frames(shape)
    array[...] = values
    return array


@pytest.mark.parametrize("codec", sorted(ENCODINGS))
@pytest.mark.parametrize("sharded", [True, False], ids=["sharded", "unsharded"])
@pytest.mark.parametrize("grey", [False, True], ids=["colour", "grey"])
def test_every_frame_equals_zarr(tmp_path, codec, sharded, grey):
    array = frame_array(tmp_path, "images", codec=codec, sharded=sharded, grey=grey)
    reader = FrameReader.for_array(array)
    assert reader is not None, "the layout convert writes has the direct path"
    for serial in range(array.shape[0]):
        for timestep in range(array.shape[1]):
            frame = reader.read((serial, timestep))
            np.testing.assert_array_equal(frame, array[serial, timestep])
            assert frame.flags.writeable and frame.flags.c_contiguous


def test_unwritten_frames_are_the_fill_value_like_zarr(tmp_path):
    array = frame_array(tmp_path, "images")
    array[1] = 0  # zarr drops all-fill chunks: the second camera's shards hold empty entries or are absent
    array[0, 5] = 0
    reader = FrameReader.for_array(array)
    for index in [(1, 0), (1, 5), (0, 5), (0, 4)]:
        np.testing.assert_array_equal(reader.read(index), array[index])


def test_a_rewritten_shard_is_read_again(tmp_path):
    array = frame_array(tmp_path, "images")
    reader = FrameReader.for_array(array)
    reader.read((0, 1))  # caches the shard's index
    array[0, :4] = frames((1, 4) + FRAME, seed=7)[0]
    np.testing.assert_array_equal(reader.read((0, 1)), array[0, 1])


def test_outside_the_array_is_an_index_error(tmp_path):
    reader = FrameReader.for_array(frame_array(tmp_path, "images"))
    with pytest.raises(IndexError, match="outside"):
        reader.read((2, 0))
    with pytest.raises(IndexError, match="outside"):
        reader.read((0, 1, 2))


def test_layouts_without_the_direct_path_fall_back_to_zarr(tmp_path):
    values = frames((1, 2) + FRAME)
    jpegxl = zarr.create_array(tmp_path / "j.zarr", shape=values.shape, dtype="uint8", chunks=(1, 1) + FRAME,
                               serializer=JpegXLCodec(lossless=True, effort=1), compressors=[],
                               dimension_names=COLOUR_DIMS)
    jpegxl[...] = values
    rows = zarr.create_array(tmp_path / "r.zarr", shape=values.shape, dtype="uint8", chunks=(1, 1, 6, 10, 3),
                             dimension_names=COLOUR_DIMS)  # half frames per chunk
    rows[...] = values
    for array in (jpegxl, rows):
        assert FrameReader.for_array(array) is None
        np.testing.assert_array_equal(frame_reader(array)((0, 1)), values[0, 1])


def shard_file(array: zarr.Array, serial: int = 0, shard: int = 0):
    return array.store.root / array.path / array.metadata.encode_chunk_key((serial, shard, 0, 0, 0))


def test_a_damaged_shard_index_is_named(tmp_path):
    array = frame_array(tmp_path, "images")
    path = shard_file(array)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"store\.zarr/images/c/0/0/0/0/0 is corrupt: its index fails its crc32c"):
        FrameReader.for_array(array).read((0, 1))


def test_a_truncated_shard_is_named(tmp_path):
    array = frame_array(tmp_path, "images")
    path = shard_file(array)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(StoreError, match="images/c/0/0/0/0/0 is truncated"):
        FrameReader.for_array(array).read((0, 0))


def test_a_chunk_of_the_wrong_size_is_refused_not_half_filled(tmp_path):
    small = frame_array(tmp_path, "small", shape=(2, 6, 6, 10, 3))
    large = frame_array(tmp_path, "large")
    shard_file(large).write_bytes(shard_file(small).read_bytes())  # a valid shard of smaller frames
    with pytest.raises(StoreError, match=r"Frame \(0, 2\) of .*large could not be decompressed \(the chunk holds "
                                         r"180 bytes, not the 360 of a frame\)"):
        FrameReader.for_array(large).read((0, 2))


def test_store_frame_reads_the_stored_frame_with_and_without_dask(converted):
    for dask in (True, False):
        dataset = nz.sequence(nz.open(converted, dask=dask), "nvs", 388)
        serial, timestep = dataset.attrs["video_serials"][1], int(dataset.timestep[2])
        expected = dataset.images.sel(serial=serial, timestep=timestep).values
        np.testing.assert_array_equal(nz.frame(dataset, serial, timestep), expected)
        # a selection of cameras still reads the camera asked for, not the one at its position in the selection
        cameras = nz.train_cameras(dataset).sel(serial=[serial])
        np.testing.assert_array_equal(nz.frame(cameras, serial, timestep), expected)
        with pytest.raises(StoreError, match="No frame for camera '222200042'"):
            nz.frame(cameras, "222200042", timestep)


def test_store_frame_on_a_dask_backed_group_computes_nothing_per_frame(converted):
    """The written-camera check of the direct path comes with its cached reader, not from computing the Dataset's
    dask-backed flags on every call (a group opened by hand, as for a resolution level)."""
    from dask.callbacks import Callback

    group = "nvs/388/GLASSES"
    dataset = nz.open(converted, dask=True)[group].to_dataset()
    dataset.encoding.update({nz.STORE_ENCODING: str(converted), nz.GROUP_ENCODING: group})
    serial, timesteps = dataset.attrs["video_serials"][0], [int(t) for t in dataset.timestep.values]
    nz.frame(dataset, serial, timesteps[0])
    computations = []
    with Callback(start=computations.append):
        frames = [nz.frame(dataset, serial, timestep) for timestep in timesteps]
    assert computations == []
    np.testing.assert_array_equal(frames[-1], dataset.images.sel(serial=serial, timestep=timesteps[-1]).values)


def test_store_frame_of_a_dataset_not_from_sequence_reads_through_xarray(converted):
    import xarray as xr

    dataset = xr.open_datatree(converted, engine="zarr", chunks=None)["nvs/388/GLASSES"].to_dataset()
    serial = str(dataset.serial.values[0])
    timestep = int(dataset.timestep[0])
    np.testing.assert_array_equal(nz.frame(dataset, serial, timestep),
                                  dataset.images.sel(serial=serial, timestep=timestep).values)


@pytest.mark.parametrize("codec", sorted(ENCODINGS))
@pytest.mark.parametrize("grey", [False, True], ids=["colour", "grey"])
@pytest.mark.parametrize("n_frames", [8, 6], ids=["whole-shards", "partial-last-shard"])
def test_shards_written_directly_read_back_through_zarr(tmp_path, codec, grey, n_frames):
    shape = (2, n_frames) + (FRAME if not grey else FRAME[:2])
    array = frame_array(tmp_path, "images", codec=codec, grey=grey, shape=shape, values=np.zeros(shape, np.uint8))
    values = frames(shape, seed=3)
    sink = frame_sink(array, (1,))
    assert isinstance(sink, ShardWriter)
    for frame in values[1]:
        sink.add(frame[..., 0] if grey and frame.ndim == 3 else frame)
    assert sink.close() == n_frames
    reopened = zarr.open_array(tmp_path / "store.zarr", path="images", mode="r")
    np.testing.assert_array_equal(reopened[1], values[1])
    np.testing.assert_array_equal(reopened[0], 0)
    assert not list((tmp_path / "store.zarr").rglob(".*.part*")), "no temporary file is left"


def test_frame_sink_falls_back_to_zarr_for_other_codecs(tmp_path):
    values = frames((1, 3) + FRAME)
    array = zarr.create_array(tmp_path / "j.zarr", shape=values.shape, dtype="uint8", chunks=(1, 1) + FRAME,
                              shards=(1, 2) + FRAME, serializer=JpegXLCodec(lossless=True, effort=1), compressors=[],
                              dimension_names=COLOUR_DIMS)
    sink = frame_sink(array, (0,))
    assert isinstance(sink, ZarrFrameWriter)
    for frame in values[0]:
        sink.add(frame)
    assert sink.close() == 3
    np.testing.assert_array_equal(array[0], values[0])


def test_a_shard_writer_refuses_more_frames_than_the_array_holds(tmp_path):
    array = frame_array(tmp_path, "images")
    sink = frame_sink(array, (0,))
    for frame in frames(array.shape)[0]:
        sink.add(frame)
    with pytest.raises(IndexError, match="More frames"):
        sink.add(frames(array.shape)[0, 0])


def test_a_shard_streams_to_its_temporary_file_and_an_error_leaves_only_whole_shards(tmp_path):
    shape = (2, 8) + FRAME
    array = frame_array(tmp_path, "images", shape=shape, values=np.zeros(shape, np.uint8))
    store, values = tmp_path / "store.zarr", frames(shape, seed=5)
    shard_files = lambda: sorted(str(p.relative_to(store / "images")) for p in (store / "images").rglob("*")
                                 if p.is_file() and p.name != "zarr.json")
    assert shard_files() == []  # zarr wrote no shard of zeros
    with pytest.raises(RuntimeError, match="stop"):
        with frame_sink(array, (1,)) as sink:
            for frame in values[1, :6]:  # one whole shard of 4, then 2 frames of the next
                sink.add(frame)
            partial = list(store.rglob(".*.part*"))
            assert len(partial) == 1, "the open shard's chunks go to its temporary file"
            raise RuntimeError("stop")
    assert not list(store.rglob(".*.part*")), "the open shard's temporary file is removed"
    assert shard_files() == ["c/1/0/0/0/0"], "only the whole shard"
    reopened = zarr.open_array(store, path="images", mode="r")
    np.testing.assert_array_equal(reopened[1, :4], values[1, :4])  # the whole shard written before the error
    np.testing.assert_array_equal(reopened[1, 4:], 0)  # the shard left open is the old one, untouched
