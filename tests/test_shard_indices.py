"""A frame array's shard indexes read in one pass: later reads read only their chunk, a damaged shard still
fails by name on its own reads and blocks no other shard."""

from __future__ import annotations

import os

import numpy as np
import pytest

import nersemble_zarr.store as nz
from nersemble_zarr import schema
from nersemble_zarr.chunk_reader import FrameReader
from nersemble_zarr.errors import StoreError
from test_chunk_reader import frame_array, shard_file


def _counted_preads(monkeypatch) -> list:
    calls = []
    real = os.pread

    def pread(descriptor, length, offset):
        calls.append(length)
        return real(descriptor, length, offset)

    monkeypatch.setattr(os, "pread", pread)
    return calls


def test_after_reading_every_index_each_frame_read_is_one_pread_of_its_chunk(tmp_path, monkeypatch):
    array = frame_array(tmp_path, "images", shape=(3, 10, 12, 10, 3))  # 3 cameras x 3 shards of 4 frames
    values = array[...]
    reader = FrameReader.for_array(array)
    calls = _counted_preads(monkeypatch)
    reader.read_all_indices()
    assert len(calls) == 9  # one index per shard
    calls.clear()
    for index in np.ndindex(3, 10):
        np.testing.assert_array_equal(reader.read(index), values[index])
    assert len(calls) == 30  # the chunks only: no index read again


def test_a_damaged_shard_fails_on_its_own_reads_and_the_others_read(tmp_path):
    array = frame_array(tmp_path, "images")
    path = shard_file(array, serial=0, shard=0)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    reader = FrameReader.for_array(array)
    reader.read_all_indices()
    np.testing.assert_array_equal(reader.read((1, 0)), array[1, 0])
    with pytest.raises(StoreError, match="is corrupt: its index fails its crc32c"):
        reader.read((0, 1))


def test_sequence_reads_the_frames_shard_indexes_once(converted, monkeypatch):
    dataset = nz.sequence(nz.open(converted, dask=False), "nvs", 388)
    calls = _counted_preads(monkeypatch)
    for serial in dataset.serial.values[dataset[schema.converted_flag(schema.IMAGES)].values]:
        for timestep in dataset.timestep.values:
            frame = nz.frame(dataset, str(serial), int(timestep))
            assert frame.shape == dataset.images.shape[2:]
    assert len(calls) == int(dataset[schema.converted_flag(schema.IMAGES)].sum()) * dataset.sizes[schema.TIMESTEP]
