"""Scale-out: converting on a dask.distributed cluster of worker processes writes the same store as threads."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import zarr

from nersemble_zarr.convert import convert


def array_digests(store: Path) -> dict[str, str]:
    """sha1 of the values of every array in the store, keyed by its path."""
    digests = {}
    root = zarr.open_group(store, mode="r", use_consolidated=False)
    for path, array in root.members(max_depth=None):
        if isinstance(array, zarr.Array):
            values = np.ascontiguousarray(array[...])
            digests[path] = hashlib.sha1(values.tobytes() + str(values.dtype).encode()).hexdigest()
    return digests


@pytest.mark.timeout(300)
def test_local_cluster_of_two_processes_converts_the_same_store_as_threads(synthetic_root, tmp_path):
    from distributed import Client, LocalCluster

    threaded, clustered = tmp_path / "threads.zarr", tmp_path / "cluster.zarr"
    convert(synthetic_root, threaded, workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            worker_pids = set(client.run(os.getpid).values())
            done = []
            summary = convert(synthetic_root, clustered, client=client, on_video_done=done.append)
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    assert summary.videos_written == len(done) > 2
    expected = array_digests(threaded)
    assert any(path.endswith("/images") for path in expected)
    assert array_digests(clustered) == expected
    assert zarr.open_group(clustered, mode="r").attrs.asdict() == zarr.open_group(threaded, mode="r").attrs.asdict()
