"""Scale-out: converting on a dask.distributed cluster of worker processes writes the same store as threads."""

from __future__ import annotations

import os

import pytest
import zarr

from helpers import store_digests
from nersemble_zarr.convert import convert


@pytest.mark.timeout(300)
def test_local_cluster_of_two_processes_converts_the_same_store_as_threads(synthetic_root, converted, tmp_path):
    from distributed import Client, LocalCluster

    threaded, clustered = converted, tmp_path / "cluster.zarr"  # converted: on threads, workers=2
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            worker_pids = set(client.run(os.getpid).values())
            done = []
            summary = convert(synthetic_root, clustered, client=client, progress=done.append)
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    assert summary.videos_written == len(done) > 2
    expected = store_digests(threaded)
    assert any(path.endswith("/images") for path in expected)
    assert store_digests(clustered) == expected
    assert zarr.open_group(clustered, mode="r").attrs.asdict() == zarr.open_group(threaded, mode="r").attrs.asdict()
