"""Stores on object storage: convert into and read from an S3-compatible server on loopback (moto)."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import requests
import zarr

from helpers import store_digests
from nersemble_zarr import store as store_module
from nersemble_zarr.convert import convert
from nersemble_zarr.inventory import inventory

moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")

BUCKET = "nersemble"


class _RequestCounter(logging.Handler):
    """Counts the S3 requests the server logs (werkzeug writes one line per request)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto keeps its buckets per process, not per server: start from none (another module may have used it)
    requests.post(f"http://{host}:{port}/moto-api/reset", timeout=10).raise_for_status()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL",
                                             "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_DEFAULT_REGION="us-east-1")
    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir(BUCKET)
    counter = _RequestCounter()
    logging.getLogger("werkzeug").addHandler(counter)
    try:
        yield counter
    finally:
        logging.getLogger("werkzeug").removeHandler(counter)
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def s3_store(synthetic_root, s3_endpoint) -> str:
    url = f"s3://{BUCKET}/bench.zarr"
    convert(synthetic_root, url, workers=2)
    return url


@pytest.mark.parametrize("group", ["nvs/388/GLASSES", "mono_flame_avatar/393/EXP-1-head", "mono_flame_avatar/393/FREE"])
def test_a_store_converted_into_s3_equals_the_local_one(s3_store, converted, group):
    assert store_digests(s3_store, group) == store_digests(converted, group)


def test_opening_the_remote_store_reads_the_consolidated_metadata_in_a_few_requests(s3_store, s3_endpoint):
    s3fs.S3FileSystem.clear_instance_cache()
    s3_endpoint.lines.clear()
    tree = store_module.open(s3_store)
    opened = [line.split('"')[1].rsplit(" ", 1)[0] for line in s3_endpoint.lines]
    consolidated_requests = len(opened)
    assert set(tree["mono_flame_avatar/393"].children) == {"EXP-1-head", "FREE"}

    s3fs.S3FileSystem.clear_instance_cache()
    s3_endpoint.lines.clear()
    root = zarr.open_group(s3_store, mode="r", use_consolidated=False)
    n_groups = sum(1 for _ in root.members(max_depth=None))
    walk_requests = len(s3_endpoint.lines)
    # Opening reads one metadata document, the root zarr.json holding the consolidated metadata of every
    # group and array, plus the index coordinates (serial, timestep) of each sequence; walking the
    # hierarchy without it costs at least one request per group and array.
    metadata_reads = [line for line in opened if "zarr.json" in line and line.startswith("GET")]
    assert metadata_reads == [f"GET /{BUCKET}/bench.zarr/zarr.json"] * len(metadata_reads) and metadata_reads
    n_indexes = sum(len(node.dataset.indexes) for node in tree.subtree)
    assert consolidated_requests <= 4 + 2 * n_indexes, opened  # a HEAD and a GET for each index coordinate
    assert walk_requests >= n_groups > 2 * len(metadata_reads)


def test_frames_and_inventory_read_from_s3(s3_store, converted):
    remote = store_module.sequence(store_module.open(s3_store), "nvs", 388)
    local = store_module.sequence(store_module.open(converted), "nvs", 388)
    serial, timestep = remote.attrs["video_serials"][0], int(remote.timestep[2])
    np.testing.assert_array_equal(store_module.frame(remote, serial, timestep), store_module.frame(local, serial, timestep))
    report = inventory(s3_store)
    assert {s.path for s in report.sequences} >= {"nvs/388/GLASSES", "mono_flame_avatar/393/FREE"}
    assert report.stored_bytes == inventory(converted).stored_bytes


def test_converting_into_a_memory_filesystem(synthetic_root):
    url = "memory://nersemble/bench.zarr"
    convert(synthetic_root, url, benchmarks=("mono_flame_avatar",), sequences=("EXP-1-head",), workers=2)
    dataset = store_module.sequence(store_module.open(url), "mono_flame_avatar", 393, "EXP-1-head")
    assert dataset.images.shape[0] == 4 and bool(dataset.images_converted.sel(serial="222200037"))


def test_the_dataset_converted_at_a_level_into_s3_equals_the_local_one(s3_endpoint, synthetic_dataset, dataset_store):
    from nersemble_zarr.convert import DatasetOptions

    url = f"s3://{BUCKET}/dataset.zarr"
    convert(synthetic_dataset.parent, url, benchmarks=("dataset",), participants=(17, 18), sequences=("EXP-1-head",),
            workers=2, dataset=DatasetOptions(level=4, colour_correct=True))
    for participant in (17, 18):
        group = f"level_4/dataset/{participant}/EXP-1-head"
        assert store_digests(url, group) == store_digests(dataset_store, group)
