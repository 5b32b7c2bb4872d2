"""`meshes --scheduler`: sequences meshed on a dask.distributed LocalCluster equal the local result."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from nersemble_zarr import schema
from nersemble_zarr import store as store_module
from nersemble_zarr.cli.main import main as cli
from nersemble_zarr.convert import convert
from nersemble_zarr.flame import write_standin_flame

GROUPS = ("mono_flame_avatar/393/EXP-1-head", "mono_flame_avatar/393/FREE")


@pytest.mark.timeout(300)
def test_meshes_on_a_local_cluster_equal_the_local_run(synthetic_root, tmp_path):
    from distributed import Client, LocalCluster

    flame_dir = tmp_path / "flame"
    write_standin_flame(flame_dir)
    local, clustered = tmp_path / "local.zarr", tmp_path / "cluster.zarr"
    convert(synthetic_root, local, benchmarks=("mono_flame_avatar",), workers=2)
    shutil.copytree(local, clustered)
    runner = CliRunner()
    result = runner.invoke(cli, ["meshes", str(local), "--flame-dir", str(flame_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = runner.invoke(cli, ["meshes", str(clustered), "--flame-dir", str(flame_dir), "--device", "cpu",
                                     "--scheduler", cluster.scheduler_address])
        assert result.exit_code == 0, result.output
        assert "on the cluster" in result.output
        with Client(cluster) as client:
            assert len(client.run(lambda: None)) == 2
    for group in GROUPS:
        expected = zarr.open_group(local, path=group, mode="r")
        got = zarr.open_group(clustered, path=group, mode="r")
        assert got.attrs["vertices_complete"] is True
        np.testing.assert_allclose(got[schema.VERTICES][:], expected[schema.VERTICES][:], atol=1e-6)
        np.testing.assert_array_equal(got[schema.FACES][:], expected[schema.FACES][:])
    # The consolidated metadata the cluster run left shows every new array.
    tree = store_module.open(clustered)
    assert all(schema.VERTICES in tree[group].dataset for group in GROUPS)
