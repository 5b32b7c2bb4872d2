"""``nersemble-zarr synthetic OUT --dataset`` writes the synthetic v2 dataset into OUT/dataset, and
``serve-synthetic OUT`` gives its access URL (``NERSEMBLE_DATA_URL``) beside the benchmarks' in the env file."""

from __future__ import annotations

import csv
import shutil

import requests

from helpers import run_cli, serving_synthetic, tree_digest
from nersemble_zarr.synthetic.dataset import expected_dataset_files
from nersemble_zarr.synthetic.dataset_config import SyntheticDatasetConfig
from nersemble_zarr.video import probe

CONFIG = SyntheticDatasetConfig()  # what the synthetic_dataset fixture holds


def test_the_dataset_option_writes_the_default_dataset_beside_the_benchmark(synthetic_dataset, tmp_path):
    out = tmp_path / "out"
    result = run_cli("synthetic", out, "--size", "tiny-svfr", "--dataset", "-j", "1", exit_code=0)
    assert f"Wrote the synthetic dataset (2 participants, 110x160) to {out / 'dataset'}" in result.output
    assert (out / "svfr").is_dir()  # the benchmark as before
    assert tree_digest(out / "dataset") == tree_digest(synthetic_dataset)  # the default config, byte for byte


def test_the_dataset_options_choose_participants_and_frames(tmp_path):
    out = tmp_path / "out"
    run_cli("synthetic", out, "--size", "tiny-svfr", "--dataset-participants", "17-19", "--dataset-frames", "1",
            "--seed", "3", "-j", "2", exit_code=0)  # either implies --dataset; -j: the process pool
    config = SyntheticDatasetConfig(seed=3, participants=(17, 18, 19), n_frames=1)
    written = sorted(p.relative_to(out / "dataset").as_posix() for p in (out / "dataset").rglob("*") if p.is_file())
    assert written == sorted(expected_dataset_files(config))
    rows = list(csv.reader((out / "dataset/metadata_sequences.csv").open()))
    assert [row[0] for row in rows[1:]] == ["17", "18", "19"]
    assert probe(out / "dataset/019/sequences/EXP-1-head/images/cam_222200039.mp4").n_frames == 1


def test_a_bad_dataset_option_is_refused_before_anything_is_written(tmp_path):
    result = run_cli("synthetic", tmp_path / "out", "--dataset-participants", "17,1000", exit_code=2)
    assert result.output.strip().splitlines()[-1] == \
        "Error: Synthetic dataset participant 1000 is invalid; expected 0 to 999."
    assert not (tmp_path / "out").exists()


def test_a_dataset_path_taken_by_a_file_is_refused_before_the_benchmark_is_written(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "dataset").write_text("mine")
    result = run_cli("synthetic", tmp_path / "out", "--dataset", exit_code=2)
    assert result.output.strip().splitlines()[-1].startswith(
        f"Error: The synthetic dataset folder {tmp_path / 'out' / 'dataset'} exists and is a regular file")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["dataset"]
    assert (tmp_path / "out" / "dataset").read_text() == "mine"


def test_full_size_is_the_real_frame_size():
    assert SyntheticDatasetConfig.chosen(full_size=True).frame_size() == (2200, 3208)
    assert SyntheticDatasetConfig.chosen(full_size=True, n_frames=2).n_frames == 2
    assert SyntheticDatasetConfig.chosen(5) == SyntheticDatasetConfig(seed=5)


def test_serve_synthetic_gives_the_dataset_url_too(synthetic_dataset, tmp_path):
    served = tmp_path / "served"
    shutil.copytree(synthetic_dataset, served / "dataset")
    env_file = tmp_path / "synthetic.env"
    with serving_synthetic(served, env_file) as (server, output):
        assert env_file.stat().st_mode & 0o777 == 0o600
        settings = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        urls = {name: value.strip('"') for name, value in settings.items()}
        assert list(urls) == ["NERSEMBLE_BENCHMARK_URL", "NERSEMBLE_DATA_URL"]
        assert urls["NERSEMBLE_DATA_URL"] == urls["NERSEMBLE_BENCHMARK_URL"] + "/dataset"
        answer = requests.get(f"{urls['NERSEMBLE_DATA_URL']}/metadata_sequences.csv", timeout=10)
        assert answer.content == (synthetic_dataset / "metadata_sequences.csv").read_bytes()
        fetched = run_cli("fetch", tmp_path / "root", "dataset", "-p", "18", "--cameras", ",".join(CONFIG.serials),
                          env={"NERSEMBLE_DATA_URL": urls["NERSEMBLE_DATA_URL"]}, exit_code=0)
        assert urls["NERSEMBLE_DATA_URL"] not in fetched.output
    expected = {relative: digest for relative, digest in tree_digest(synthetic_dataset).items()
                if relative.endswith(".csv") or relative.startswith("018/")}
    assert tree_digest(tmp_path / "root" / "dataset") == expected and len(expected) == 2 + 2 + 3 + 2 * 3
    assert server.returncode == 0, output["stderr"]
    assert not env_file.exists()
    secret = urls["NERSEMBLE_BENCHMARK_URL"].rsplit("/", 1)[1]
    assert secret not in output["stdout"] + output["stderr"]
    assert "NERSEMBLE_BENCHMARK_URL and NERSEMBLE_DATA_URL are in" in output["stdout"]


def test_serve_synthetic_without_a_dataset_gives_the_benchmark_url_only(tmp_path):
    (tmp_path / "served" / "nvs").mkdir(parents=True)
    env_file = tmp_path / "synthetic.env"
    with serving_synthetic(tmp_path / "served", env_file) as (server, output):
        lines = env_file.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith('NERSEMBLE_BENCHMARK_URL="http://127.0.0.1:')
    assert server.returncode == 0 and "NERSEMBLE_BENCHMARK_URL is in" in output["stdout"]
