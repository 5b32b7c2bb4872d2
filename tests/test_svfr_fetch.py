"""SVFR through fetch: the catalogue's 391 images, the official layout, resume, dry run and secrecy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nersemble_zarr import catalogue
from nersemble_zarr.cli.main import main
from nersemble_zarr.errors import CatalogueError
from nersemble_zarr.fetch import FetchIncomplete, RetryPolicy, fetch
from nersemble_zarr.fetch.plan import make_request, plan_paths
from nersemble_zarr.sources import get_source
from nersemble_zarr.synthetic import expected_files, render_svfr_image
from nersemble_zarr.synthetic.server import Faults, serve

SVFR = "svfr"
IMAGE = "017/EXP-4-lips_6_221501007/rgb.png"  # a key whose timestep is not padded on the server


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_the_catalogue_holds_the_391_keys_and_the_unpadded_server_paths() -> None:
    keys = catalogue.svfr_image_keys()
    assert tuple(keys) == catalogue.SVFR_PARTICIPANTS
    assert sum(map(len, keys.values())) == 391
    assert {p: len(k) for p, k in keys.items() if len(k) != 20} == {175: 19, 194: 19, 215: 13}
    paths = plan_paths(make_request(SVFR), get_source(SVFR).listing({}))
    assert len(paths) == len(set(paths)) == 391 and IMAGE in paths
    assert catalogue.svfr_mesh_entry(17, catalogue.ImageKey("EXP-4-lips", 6, "221501007"), "posed") == (
        "017/EXP-4-lips_006_221501007/mesh_posed.ply"
    )
    with pytest.raises(CatalogueError, match="Unknown participant 388"):
        make_request(SVFR, [388])
    with pytest.raises(CatalogueError, match="Unknown asset 'alpha_maps'"):
        make_request(SVFR, assets=["alpha_maps"])


def test_fetch_is_byte_identical_and_the_official_data_manager_reads_it(svfr_root, svfr_config, tmp_path) -> None:
    from nersemble_benchmark.data.benchmark_data import SVFRDataManager

    with serve(svfr_root) as server:
        summary = fetch(tmp_path, SVFR, url=server.url, participants=[17, 215], workers=4)
        assert not any(r.path.endswith("metadata.json") for r in server.requests)  # SVFR has none
    assert files_under(tmp_path) == set(expected_files(svfr_config))
    assert summary.downloaded == 33 and not summary.failed
    for relative in expected_files(svfr_config):
        assert (tmp_path / relative).read_bytes() == (svfr_root / relative).read_bytes(), relative
    manager = SVFRDataManager(str(tmp_path), 215)
    official_keys = [(k.sequence_name, k.timestep, k.serial) for k in manager.list_image_keys()]
    assert sorted(official_keys) == sorted(catalogue.svfr_image_keys()[215])
    first = manager.list_image_keys()[0]
    key = catalogue.ImageKey(first.sequence_name, first.timestep, first.serial)
    assert np.array_equal(manager.load_image(first), render_svfr_image(svfr_config, 215, key))


def test_an_interrupted_fetch_resumes_and_a_complete_one_skips(svfr_root, tmp_path) -> None:
    path = f"{SVFR}/{IMAGE}"
    size = (svfr_root / path).stat().st_size
    with serve(svfr_root, Faults(drop_after_bytes=size // 2, paths=(path,))) as server:
        with pytest.raises(FetchIncomplete):
            fetch(tmp_path, SVFR, url=server.url, participants=[17], retry=RetryPolicy(attempts=1))
        assert (tmp_path / f"{path}.part").stat().st_size == size // 2 and not (tmp_path / path).exists()
        server.faults = Faults()
        server.clear_log()
        resumed = fetch(tmp_path, SVFR, url=server.url, participants=[17])
        gets = [(r.path, r.range) for r in server.requests if r.method == "GET"]
        again = fetch(tmp_path, SVFR, url=server.url, participants=[17])
    assert gets == [(path, f"bytes={size // 2}-")] and resumed.downloaded == 1 and resumed.skipped == 19
    assert (tmp_path / path).read_bytes() == (svfr_root / path).read_bytes()
    assert again.downloaded == 0 and again.skipped == 20 and not list(tmp_path.rglob("*.part"))


def test_cli_dry_run_lists_the_images_and_never_the_url(svfr_root, tmp_path) -> None:
    with serve(svfr_root) as server:
        result = CliRunner().invoke(main, ["fetch", str(tmp_path / "out"), SVFR, "-p", "215", "--dry-run",
                                           "--url", server.url])
        missing = CliRunner().invoke(main, ["fetch", str(tmp_path / "out2"), SVFR, "-p", "60", "--url", server.url])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 15 and lines[-1].startswith("13 files, ")
    assert all(line.split()[-1].startswith("svfr/215/") and line.endswith("/rgb.png") for line in lines[:-2])
    assert lines[-2].endswith("in all for svfr/215/ (13 files)")
    assert not (tmp_path / "out").exists()
    assert missing.exit_code != 0 and server.token not in result.output + missing.output
