"""The README tour by hand against ``serve-synthetic`` (issue 23, points 1-12): each command runs as printed, and
what a newcomer gets wrong is one line with the right exit code, leaving nothing behind.

Every test drives the CLI (CliRunner through ``run_cli``, or a subprocess) and checks the exit code, the one
line and the files left. The tour itself runs as printed in tests/test_docs_snippets.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli, tree_digest
from nersemble_zarr import catalogue
from nersemble_zarr.synthetic.server import Faults, serve

ROOT = Path(__file__).resolve().parent.parent
HOLD_OUT = catalogue.NVS_HOLD_OUT_SERIALS


def error_line(output: str) -> str:
    """The one error line of a failed command (and check there is exactly one)."""
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, output
    return lines[0]


@pytest.fixture(scope="module")
def perfect(tmp_path_factory, standin_dir) -> Path:
    """The folder `nersemble-zarr synthetic-predictions --flame-dir STANDIN` wrote (read-only)."""
    folder = tmp_path_factory.mktemp("perfect") / "perfect"
    result = run_cli("synthetic-predictions", folder, "--flame-dir", standin_dir, exit_code=0)
    assert "predictions.zarr" in result.output and "PRED" in result.output
    return folder


# ---------------------------------------------------------------- 1: predictions for every benchmark
def test_synthetic_predictions_hold_every_camera_and_every_svfr_image(perfect, standin_dir):
    import xarray as xr

    tree = xr.open_datatree(perfect / "predictions.zarr", engine="zarr")
    nvs = tree["nvs/388/GLASSES"].dataset["images"]
    assert nvs.shape == (16, 6, 160, 110, 3) and sorted(map(str, nvs.serial.values)) == sorted(catalogue.SERIALS)
    assert {"EXP-1-head", "FREE"} <= set(tree["mono_flame_avatar/393"].children)
    meshes = sorted(path.relative_to(perfect / "PRED").as_posix() for path in (perfect / "PRED").rglob("*.ply"))
    assert len(meshes) == 2 * 33 and meshes[0].startswith("017/")
    before = tree_digest(perfect)
    again = run_cli("synthetic-predictions", perfect, "--flame-dir", standin_dir, exit_code=2)
    assert "exists; pass --overwrite" in error_line(again.output)
    assert tree_digest(perfect) == before


def test_a_submission_takes_the_frame_size_of_the_fetched_videos(perfect, synthetic_root, converted, tmp_path):
    from nersemble_zarr.submission import expected_submission

    assert (expected_submission("nvs", root=synthetic_root, partial=True).width,
            expected_submission("nvs", store=converted, partial=True).height) == (110, 160)
    assert expected_submission("nvs").width == 1100  # without a folder or store: the benchmark's
    output = tmp_path / "submission.zip"
    result = run_cli("export-submission", perfect / "predictions.zarr", output, "--benchmark", "nvs", "--root",
                     synthetic_root, "--partial", exit_code=0)  # as the README tour prints it: no --resolution
    assert "3 validated nvs videos" in result.output and output.is_file()


# ---------------------------------------------------------------- 2: a benchmark the server does not serve
def test_a_benchmark_the_server_lacks_is_one_sentence(synthetic_root, tmp_path):
    root = tmp_path / "ROOT"
    with serve(synthetic_root) as server:  # the tiny video benchmarks only: no SVFR image
        result = run_cli("fetch", root, "svfr", "-p", "17", "--url", server.url, exit_code=1)
    line = error_line(result.output)
    assert "does not serve the svfr benchmark" in line and "404" in line and "rerun the same command" not in line
    assert result.output.count("404") == 1  # not one reason per file
    assert not list(root.rglob("*.png"))


def test_synthetic_serves_svfr_by_default(tmp_path):
    run_cli("synthetic", tmp_path / "OUT", exit_code=0)
    assert len(list((tmp_path / "OUT" / "svfr" / "017").glob("*/rgb.png"))) == 20
    with serve(tmp_path / "OUT") as server:
        result = run_cli("fetch", tmp_path / "ROOT", "svfr", "-p", "17", "--url", server.url, exit_code=0)
    assert "20 downloaded" in result.output


# ---------------------------------------------------------------- 4: meshes needs no model when they are done
def test_complete_meshes_need_no_model_and_a_missing_model_points_at_the_standin(converted, standin_dir, tmp_path):
    store = tmp_path / "z.zarr"
    shutil.copytree(converted, store)
    missing = run_cli("meshes", store, "--flame-dir", tmp_path / "nowhere", exit_code=1)
    assert "demo-output/flame-standin-NOT-FLAME" in error_line(missing.output)
    run_cli("meshes", store, "--flame-dir", standin_dir, exit_code=0)
    before = tree_digest(store)
    done = run_cli("meshes", store, "--flame-dir", tmp_path / "nowhere", exit_code=0)
    assert "2 sequence(s) with FLAME tracking, 2 already complete; nothing to do" in done.output
    assert tree_digest(store) == before


# ---------------------------------------------------------------- 5: a camera without frames is refused
def test_a_converted_store_as_predictions_is_refused_naming_the_camera(converted, synthetic_root, tmp_path):
    output = tmp_path / "submission.zip"
    result = run_cli("export-submission", converted, output, "-b", "nvs", "--root", synthetic_root, "--partial",
                     exit_code=1)
    line = error_line(result.output)
    assert "no frame of camera 222200046" in line and "388/GLASSES" in line
    assert list(tmp_path.iterdir()) == []


def test_a_camera_whose_chunks_were_never_written_is_refused(synthetic_root, tmp_path):
    import xarray as xr

    from nersemble_zarr.store import consolidate, prepare_store

    store = tmp_path / "predictions.zarr"
    prepare_store(store)
    images = np.full((3, 6, 160, 110, 3), 90, dtype=np.uint8)
    images[1] = 0  # the fill value: zarr writes no chunk of an all-black camera
    xr.Dataset({"images": (("serial", "timestep", "y", "x", "channel"), images)},
               coords={"serial": np.array(HOLD_OUT, dtype=object)}).to_zarr(
        store, group="nvs/388/GLASSES", zarr_format=3, consolidated=False,
        encoding={"images": {"chunks": (1, 6, 160, 110, 3)}})
    consolidate(store)
    result = run_cli("export-submission", store, tmp_path / "s.zip", "-b", "nvs", "--root", synthetic_root,
                     "--partial", exit_code=1)
    assert f"no frame of camera {HOLD_OUT[1]}" in error_line(result.output)
    assert not (tmp_path / "s.zip").exists()


# ---------------------------------------------------------------- 6 and 7: messages name the next step
def test_frame_counts_from_the_catalogue_name_root_and_store(perfect, tmp_path):
    result = run_cli("export-submission", perfect / "predictions.zarr", tmp_path / "s.zip", "-b", "nvs",
                     "--resolution", "110x160", "--partial", exit_code=1)
    line = error_line(result.output)
    assert "expects 1118" in line and "--root ROOT" in line and "--store STORE" in line
    assert list(tmp_path.iterdir()) == []


def test_a_store_as_root_and_a_folder_as_zip_are_named_for_what_they_are(converted, synthetic_root, tmp_path):
    result = run_cli("convert", converted, tmp_path / "y.zarr", exit_code=2)
    assert "is a zarr store, not a fetched folder" in error_line(result.output)
    assert not (tmp_path / "y.zarr").exists()
    result = run_cli("validate-submission", synthetic_root, "-b", "nvs", exit_code=2)
    assert "is a directory" in error_line(result.output)


# ---------------------------------------------------------------- 8: retries are shown
def test_each_retry_and_its_wait_is_shown_without_verbose(synthetic_root, tmp_path):
    faults = Faults(paths=("nvs/metadata.json",), error_requests=2, retry_after=0)
    with serve(synthetic_root, faults) as server:
        env = {**os.environ, "NERSEMBLE_BENCHMARK_URL": server.url}
        done = subprocess.run([sys.executable, "-m", "nersemble_zarr.cli", "fetch", str(tmp_path / "ROOT"), "nvs",
                               "-p", "388", "-j", "2"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    retries = [line for line in done.stderr.splitlines() if "nvs/metadata.json" in line and "retrying in" in line]
    assert len(retries) == 2 and "attempts left" in retries[0], done.stderr
    assert server.url not in done.stderr


# ---------------------------------------------------------------- 9: one convention for lists
def test_every_list_option_takes_commas_repeats_and_id_ranges(svfr_root, tmp_path):
    with serve(svfr_root) as server:
        ranged = run_cli("fetch", tmp_path / "R", "svfr", "-p", "17-30", "--url", server.url, "--dry-run", exit_code=0)
        listed = run_cli("fetch", tmp_path / "R", "svfr", "-p", "17,215", "--url", server.url, "--dry-run",
                         exit_code=0)
        empty = run_cli("fetch", tmp_path / "R", "svfr", "-p", "18-30", "--url", server.url, exit_code=2)
        reversed_range = run_cli("fetch", tmp_path / "R", "svfr", "-p", "30-17", "--url", server.url, exit_code=2)
    assert "20 files" in ranged.output and "33 files" in listed.output
    assert "No participant of 'svfr' lies in the range" in error_line(empty.output)
    assert "'30-17' is not a valid integer id or a range" in error_line(reversed_range.output)
    assert not (tmp_path / "R").exists()
    split = tmp_path / "split.json"
    run_cli("split", split, "-b", "nvs", "--cameras", "222200042,222200044", "--cameras", "222200040", exit_code=0)
    assert json.loads(split.read_text())["serials"] == ["222200042", "222200044", "222200040"]


# ---------------------------------------------------------------- 10: usage 2, runtime 1
@pytest.mark.parametrize("arguments, code, fragment", [
    (("info", "{tmp}/missing.zarr"), 2, "does not exist"),
    (("convert", "{tmp}/MISSING", "{tmp}/z.zarr"), 2, "does not exist"),
    (("preview", "{store}", "-p", "999", "-o", "{tmp}/x.png"), 2, "Unknown participant 999"),
    (("preview", "{store}", "-p", "388", "-t", "999", "-o", "{tmp}/x.png"), 2, "Timestep 999"),
    (("export-mesh", "{store}", "-p", "393", "-s", "EXP-1-head", "-t", "999", "-o", "{tmp}/m.ply"), 2, "Timestep 999"),
    (("export-submission", "{store}", "{tmp}/s.zip", "-b", "nvs", "--partial", "--store", "{store}"), 1,
     "no frame of camera"),
])
def test_usage_errors_exit_2_and_runtime_errors_1(converted, tmp_path, arguments, code, fragment):
    filled = [argument.format(tmp=tmp_path, store=converted) for argument in arguments]
    result = run_cli(*filled, exit_code=code)
    assert fragment in error_line(result.output)
    assert list(tmp_path.iterdir()) == []


def test_the_exit_codes_are_documented():
    readme = (ROOT / "README.md").read_text()
    assert "exit code 2" in readme and "exit code 1" in readme


# ---------------------------------------------------------------- 11: --help in step with the code
def test_help_texts_say_what_the_code_does():
    from nersemble_zarr.flame.batching import CPU_BATCH_SIZE

    top = run_cli("--help", exit_code=0).output
    commands = top.split("Commands:", 1)[1]
    assert "..." not in commands and "synthetic-predictions" in commands
    assert f"or {CPU_BATCH_SIZE} on CPU" in " ".join(run_cli("meshes", "--help").output.split())
    frames = " ".join(run_cli("export-frames", "--help").output.split())
    assert "$NERSEMBLE_FLAME_DIR" in frames and "--render-target " in frames
    submission = " ".join(run_cli("export-submission", "--help").output.split())
    assert "--render-target-dir, --render-target DIRECTORY" in submission and "instead of skipping" not in submission
    assert "instead of skipping" not in " ".join(run_cli("fetch", "--help").output.split())


# ---------------------------------------------------------------- 12: cosmetics
def test_info_columns_line_up_and_svfr_participants_are_numbers(converted, svfr_store):
    lines = run_cli("info", converted, exit_code=0).output.splitlines()
    arrays = [line for line in lines if re.match(r"^    [a-z_]+ +\(", line)]
    assert len(arrays) > 10
    assert len({line.index("chunks (") for line in arrays}) == 1  # after float32, StringDType() and uint8 alike
    svfr = run_cli("info", svfr_store, exit_code=0).output
    assert "svfr: every image of participant(s) 60, 71, 102" in svfr and "svfr/60" not in svfr


def test_the_evaluation_plot_names_infinite_psnr_and_tells_curves_apart(converted):
    from nersemble_zarr.evaluation import evaluate
    from nersemble_zarr.evaluation.plot import result_figure

    result = evaluate(converted, converted, "nvs", cameras=["222200042", "222200044"], lpips=False, jod=False)
    curves = result_figure(result).axes[0]
    assert any("PSNR = inf" in text.get_text() for text in curves.get_legend().get_texts())
    styles = {(line.get_marker(), line.get_linestyle()) for line in curves.get_lines() if line.get_marker() != "None"}
    assert len(styles) == 2


def test_every_package_folder_is_declared_for_setuptools():
    """Else setuptools warns ("Package 'nersemble_zarr.data' is absent from the packages configuration")."""
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(("nersemble_zarr", *path.relative_to(ROOT / "nersemble_zarr").parts))
               for path in (ROOT / "nersemble_zarr").rglob("*") if path.is_dir() and path.name != "__pycache__"}
    assert folders <= declared


def test_no_docs_block_is_printed_twice():
    from test_docs_snippets import SNIPPETS

    codes = [snippet.code for snippet in SNIPPETS if snippet.page.startswith("docs/")]
    assert len(codes) == len(set(codes))
