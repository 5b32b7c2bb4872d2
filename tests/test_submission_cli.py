"""The export-submission and validate-submission commands: exit codes, messages and files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import predictions_dataset, run_cli, write_predictions
from nersemble_zarr import catalogue, schema
from nersemble_zarr.synthetic import render_views

SEQUENCE = (388, "GLASSES")


@pytest.fixture(scope="module")
def predictions(tmp_path_factory, synthetic_config) -> Path:
    """A predictions store for NVS 388 (the tiny synthetic benchmark's participant): hold-out renders."""
    serials = list(catalogue.NVS_HOLD_OUT_SERIALS)
    images = np.stack([
        np.stack([rgb for rgb, _ in render_views(synthetic_config, "nvs", *SEQUENCE, serial)]) for serial in serials
    ])
    dataset = predictions_dataset(serials, images, timesteps=np.arange(images.shape[1]))
    path = tmp_path_factory.mktemp("cli") / "pred.zarr"
    return write_predictions(path, {schema.sequence_group("nvs", *SEQUENCE): dataset})


def common(synthetic_root: Path, synthetic_config) -> list[str]:
    width, height = synthetic_config.frame_size("nvs")
    return ["--benchmark", "nvs", "--root", str(synthetic_root), "--partial", "--resolution", f"{width}x{height}"]


def test_export_then_validate(tmp_path, predictions, synthetic_root, synthetic_config):
    output = tmp_path / "submission.zip"
    result = run_cli("export-submission", predictions, output, *common(synthetic_root, synthetic_config), "-j", "2")
    assert result.exit_code == 0, result.output
    assert "Wrote" in result.stdout and "3 validated nvs videos" in result.stdout
    with zipfile.ZipFile(output) as archive:
        assert archive.namelist() == [catalogue.submission_entry(*SEQUENCE, s) for s in catalogue.NVS_HOLD_OUT_SERIALS]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission.zip"]

    result = run_cli("validate-submission", output, *common(synthetic_root, synthetic_config))
    assert result.exit_code == 0, result.output
    assert f"{output} is a valid nvs submission (3 videos checked)." in result.stdout
    # Frame counts from a store's timestep coordinate (here the predictions store itself) work the same way.
    width, height = synthetic_config.frame_size("nvs")
    by_store = ["--store", predictions, "--partial", "--resolution", f"{width}x{height}"]
    assert run_cli("validate-submission", output, "-b", "nvs", *by_store).exit_code == 0


def test_validate_lists_every_problem_and_fails(tmp_path, predictions, synthetic_root, synthetic_config):
    output = tmp_path / "submission.zip"
    assert run_cli("export-submission", predictions, output, *common(synthetic_root, synthetic_config)).exit_code == 0
    with zipfile.ZipFile(output, "a") as archive:
        archive.writestr("../escape.mp4", b"x")
        archive.writestr("notes.txt", b"x")
    result = run_cli("validate-submission", output, "--benchmark", "nvs", "--root", synthetic_root, "--partial",
                     "--resolution", "1100x1604")  # the real size, not that of the videos under --root
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert "- Entry '../escape.mp4' climbs out of its folder with '..'." in lines
    assert "- 1 unexpected entry ('notes.txt'); a submission holds only" in result.stderr
    assert sum("is 110x160; expected 1100x1604." in line for line in lines) == 3
    assert lines[-1] == f"Error: {output} is not a valid nvs submission: 5 problem(s), listed above."


def test_export_refuses_to_replace_without_overwrite(tmp_path, predictions, synthetic_root, synthetic_config):
    output = tmp_path / "submission.zip"
    output.write_bytes(b"old")
    result = run_cli("export-submission", predictions, output, *common(synthetic_root, synthetic_config))
    assert result.exit_code == 2 and "exists; pass --overwrite to replace it." in result.stderr
    assert output.read_bytes() == b"old"
    result = run_cli("export-submission", predictions, output, *common(synthetic_root, synthetic_config), "--overwrite")
    assert result.exit_code == 0 and zipfile.is_zipfile(output)


def test_export_without_partial_names_the_missing_frame_counts(tmp_path, predictions, synthetic_root):
    result = run_cli("export-submission", predictions, tmp_path / "s.zip", "--benchmark", "nvs", "--root", synthetic_root)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: No frame count is known for 4 nvs sequence(s) (422/EXP-2-eyes,")
    assert list(tmp_path.iterdir()) == []


def test_bad_resolution_is_a_usage_error(tmp_path, predictions):
    result = run_cli("export-submission", predictions, tmp_path / "s.zip", "--benchmark", "nvs", "--resolution", "wide")
    assert result.exit_code == 2 and "'wide' is not WIDTHxHEIGHT" in result.stderr


def test_export_on_a_scheduler_address(tmp_path, predictions, synthetic_root, synthetic_config):
    from distributed import LocalCluster

    output = tmp_path / "submission.zip"
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        result = run_cli(
            "export-submission", predictions, output, *common(synthetic_root, synthetic_config),
            "--scheduler", cluster.scheduler_address,
        )
    assert result.exit_code == 0, result.output
    assert run_cli("validate-submission", output, *common(synthetic_root, synthetic_config)).exit_code == 0
