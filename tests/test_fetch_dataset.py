"""``fetch ROOT dataset`` on the synthetic NeRSemble v2 dataset served on loopback, and the official kit on what it
fetched.

- One participant as a real process (-vv, the URL in $NERSEMBLE_DATA_URL): every file byte-identical to the
  server's, the URL in no output, log line or file; a rerun only asks HEADs; the official ``nersemble-data``
  0.0.6 data manager reads calibration, colour calibration, sequences and images from ROOT/dataset, and the
  README's data-manager calls on compat's drop-in agree with it there.
- Resume: a run whose connections drop mid-file, or a real process killed mid-file, leaves ``.part`` files and a
  rerun asks only for the missing bytes; a file that fails never stops the others, and the summary names it with
  the command that resumes.
- Selection: the dry run's exact sizes and per-participant totals, an unknown sequence, a sequence one
  participant lacks, cameras, assets, ``-p all``; the URL from the environment or the kit's .env file, never a
  prompt; a selection that does not fit on the disk (a real small tmpfs) is refused before any file of it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from campaign import assert_secret_absent
from crash_campaign import cli_command
from nersemble_data.data import nersemble_data as official
from nersemble_zarr.fetch import FetchIncomplete, RetryPolicy, fetch
from nersemble_zarr.synthetic.dataset_config import SyntheticDatasetConfig
from nersemble_zarr.synthetic.server import Faults, serve
from test_dataset_synthetic import assert_readme_calls_agree
from test_reliability_disk import tmpfs
from test_reliability_secrets import file_texts

CONFIG = SyntheticDatasetConfig()  # what the synthetic_dataset fixture holds: 3 of the 16 cameras
CAMERAS = ",".join(CONFIG.serials)
INDEX = ("metadata_participants.csv", "metadata_sequences.csv")
ONE_TRY = RetryPolicy(attempts=1, backoff_s=0.0)


def participant_files(folder: Path, *participants: int) -> list[str]:
    """The index files and every file of the participants in ``folder``, relative to it."""
    prefixes = tuple(f"{p:03d}/" for p in participants)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and (p.name in INDEX or p.relative_to(folder).as_posix().startswith(prefixes)))


def all_files(folder: Path) -> list[str]:
    """Every file below ``folder``, relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def run(command: list, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """A real process, its standard input closed: a prompt would fail it, never hang it."""
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def clean_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    """The environment with a fresh HOME and XDG_CONFIG_HOME and no access URL but ``variables``."""
    env = {k: v for k, v in os.environ.items() if k not in ("NERSEMBLE_DATA_URL", "NERSEMBLE_BENCHMARK_URL")}
    for name in ("home", "config"):
        (tmp_path / name).mkdir(exist_ok=True)
    return {**env, "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config"), **variables}


# ---------------------------------------------------------------- one participant, as a real process
@pytest.fixture(scope="module")
def fetched(synthetic_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """``fetch ROOT dataset -p 17 --cameras ... -vv`` run twice as real processes; the outputs, the secret, and
    the requests of the rerun."""
    tmp = tmp_path_factory.mktemp("fetch_dataset")
    root = tmp / "ROOT"
    with serve(synthetic_dataset) as server:
        env = clean_env(tmp, NERSEMBLE_DATA_URL=server.url)
        first = run(cli_command("fetch", root, "dataset", "-p", "17", "--cameras", CAMERAS, "-vv"), env)
        server.clear_log()
        again = run(cli_command("fetch", root, "dataset", "-p", "17", "--cameras", CAMERAS, "-vv"), env)
        rerun_requests = server.requests
        secret, url = server.token, server.url
    return SimpleNamespace(root=root, folder=root / "dataset", first=first, again=again, secret=secret, url=url,
                           rerun_requests=rerun_requests, home=tmp / "home", config=tmp / "config")


def test_one_participant_arrives_byte_identical(fetched, synthetic_dataset):
    assert fetched.first.returncode == 0, fetched.first.stderr
    expected = participant_files(synthetic_dataset, 17)
    assert len(expected) == 2 + 2 + 3 * 3 + 3  # index, calibrations, 3 sequences x 3 cameras, 3 backgrounds
    assert all_files(fetched.folder) == expected  # nothing else: no .part, no other participant
    for relative in expected:
        assert (fetched.folder / relative).read_bytes() == (synthetic_dataset / relative).read_bytes(), relative
    assert fetched.first.stdout.strip().startswith(f"{len(expected)} files: {len(expected)} downloaded")


def test_the_url_appears_in_no_output_log_or_file(fetched):
    assert "GET" in fetched.first.stderr  # -vv logged the requests, without the URL
    for text in (fetched.secret, fetched.url):
        assert_secret_absent(text, first_stdout=fetched.first.stdout, first_stderr=fetched.first.stderr,
                             rerun_stdout=fetched.again.stdout, rerun_stderr=fetched.again.stderr,
                             **file_texts(fetched.root, fetched.home, fetched.config))


def test_a_rerun_fetches_nothing(fetched):
    assert fetched.again.returncode == 0, fetched.again.stderr
    assert {r.method for r in fetched.rerun_requests} == {"HEAD"}
    assert "0 downloaded" in fetched.again.stdout and "16 already complete" in fetched.again.stdout


def test_the_official_kit_reads_the_fetched_folder(fetched, synthetic_dataset):
    """Calibration, colour calibration, sequences and an image, as the official data manager loads them from
    ROOT/dataset, equal what it loads from the server's own folder."""
    ours, served = (official.NeRSembleParticipantDataManager(str(folder), 17)
                    for folder in (fetched.folder, synthetic_dataset))
    assert official.NeRSembleDataManager(str(fetched.folder)).list_participants() == [17]
    cameras, expected = ours.load_camera_calibration(), served.load_camera_calibration()
    assert list(cameras.world_2_cam) == list(CONFIG.serials)
    for serial, pose in expected.world_2_cam.items():
        np.testing.assert_array_equal(cameras.world_2_cam[serial], pose)
    np.testing.assert_array_equal(cameras.intrinsics, expected.intrinsics)
    colours = ours.load_color_calibration()
    assert list(colours) == list(CONFIG.serials)
    for serial, matrix in served.load_color_calibration().items():
        np.testing.assert_array_equal(colours[serial], matrix)
    assert sorted(ours.list_sequences()) == sorted(["BACKGROUND", *CONFIG.sequences])
    for sequence in CONFIG.sequences:
        assert sorted(ours.list_cameras(sequence)) == sorted(CONFIG.serials)
        image = ours.load_image(sequence, CONFIG.serials[1], CONFIG.n_frames - 1, as_uint8=True,
                                apply_color_correction=True)
        np.testing.assert_array_equal(image, served.load_image(sequence, CONFIG.serials[1], CONFIG.n_frames - 1,
                                                               as_uint8=True, apply_color_correction=True))


def test_the_readme_calls_on_the_drop_in_agree_with_the_kit_on_the_fetched_folder(fetched):
    assert_readme_calls_agree(fetched.folder, [17])


# ---------------------------------------------------------------- resume and failures
def test_an_interrupted_run_resumes_only_the_missing_bytes(synthetic_dataset, tmp_path):
    videos = [f"017/sequences/EXP-1-head/images/cam_{serial}.mp4" for serial in CONFIG.serials]
    cut = 3000
    assert all((synthetic_dataset / video).stat().st_size > cut for video in videos)
    with serve(synthetic_dataset, Faults(paths=tuple(videos), drop_after_bytes=cut, drop_requests=None)) as server:
        with pytest.raises(FetchIncomplete) as caught:
            fetch(tmp_path, "dataset", url=server.url, participants=[17], cameras=CONFIG.serials, retry=ONE_TRY)
        assert sorted(entry.path for entry in caught.value.summary.failed) == sorted(videos)
        for video in videos:
            assert not (tmp_path / "dataset" / video).exists()
            assert (tmp_path / "dataset" / f"{video}.part").stat().st_size == cut
        server.faults = Faults()
        server.clear_log()
        again = fetch(tmp_path, "dataset", url=server.url, participants=[17], cameras=CONFIG.serials)
        gets = sorted((r.path, r.range, r.status) for r in server.requests if r.method == "GET")
    assert gets == [(video, f"bytes={cut}-", 206) for video in sorted(videos)]
    assert again.bytes_downloaded == sum((synthetic_dataset / video).stat().st_size - cut for video in videos)
    assert all_files(tmp_path / "dataset") == participant_files(synthetic_dataset, 17)
    for relative in participant_files(synthetic_dataset, 17):
        assert (tmp_path / "dataset" / relative).read_bytes() == (synthetic_dataset / relative).read_bytes()


def test_a_killed_run_resumes_only_the_missing_bytes(synthetic_dataset, tmp_path):
    """SIGKILL a real fetch while bodies arrive slowly: the rerun skips what was complete, continues every
    ``.part`` from its last byte, and downloads the rest whole; every file ends byte-identical."""
    out = tmp_path / "out"
    command = cli_command("fetch", out, "dataset", "-p", "17", "--cameras", CAMERAS, "-j", "2")
    media = [r for r in participant_files(synthetic_dataset, 17) if r.startswith("017/sequences/")]
    with serve(synthetic_dataset, Faults(paths=("017/sequences/*",), bytes_per_second=20_000)) as server:
        env = clean_env(tmp_path, NERSEMBLE_DATA_URL=server.url)
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline and not (
                sum((out / "dataset" / r).is_file() for r in media) >= 2
                and any(p.stat().st_size > 0 for p in out.rglob("*.part"))):
            time.sleep(0.005)
        process.kill()
        assert process.wait(timeout=30) == -signal.SIGKILL, "the run ended before it could be killed"
        complete = {r for r in media if (out / "dataset" / r).is_file()}
        parts = {r: (out / "dataset" / f"{r}.part").stat().st_size for r in media
                 if (out / "dataset" / f"{r}.part").is_file()}
        server.faults = Faults()
        server.clear_log()
        again = run(command, env)
        gets = {r.path: (r.range, r.bytes_sent) for r in server.requests if r.method == "GET"}
    assert again.returncode == 0, again.stderr
    assert complete and any(parts.values()) and len(complete) + len(parts) < len(media)
    size = {r: (synthetic_dataset / r).stat().st_size for r in media}
    assert not complete & set(gets)  # complete files: a HEAD only
    for relative, kept in parts.items():
        assert gets[relative] == ((f"bytes={kept}-" if kept else None), size[relative] - kept), relative
    for relative in set(media) - complete - set(parts):
        assert gets[relative] == (None, size[relative]), relative
    assert all_files(out / "dataset") == participant_files(synthetic_dataset, 17)
    for relative in participant_files(synthetic_dataset, 17):
        assert (out / "dataset" / relative).read_bytes() == (synthetic_dataset / relative).read_bytes(), relative


def test_a_failed_file_never_stops_the_others_and_the_summary_says_how_to_resume(synthetic_dataset, tmp_path):
    served = Path(shutil.copytree(synthetic_dataset, tmp_path / "served"))
    lost = "017/sequences/EMO-1-shout+laugh/images/cam_222200038.mp4"
    (served / lost).unlink()
    out = tmp_path / "out"
    with serve(served) as server:
        env = clean_env(tmp_path, NERSEMBLE_DATA_URL=server.url)
        done = run(cli_command("fetch", out, "dataset", "-p", "17", "--cameras", CAMERAS), env)
    assert done.returncode == 1
    assert all_files(out / "dataset") == participant_files(served, 17)  # every other file is there
    lines = done.stderr.strip().splitlines()
    assert lines[0] == "Missing 1 file(s):" and lines[1].startswith(f"  dataset/{lost}  (")
    assert lines[2] == f"Resume with: nersemble-zarr fetch {out} dataset -p 17 --cameras {CAMERAS}"
    assert lines[3].startswith("Error: Could not fetch 1 of 16 files: dataset/" + lost) and len(lines) == 4
    assert server.token not in done.stdout + done.stderr


# ---------------------------------------------------------------- selection and the dry run
def dry_run(tmp_path: Path, url: str, *options: str) -> subprocess.CompletedProcess:
    return run(cli_command("fetch", tmp_path / "out", "dataset", "--dry-run", *options),
               clean_env(tmp_path, NERSEMBLE_DATA_URL=url))


def listed_paths(stdout: str) -> list[str]:
    """The ``dataset/...`` paths of a dry run's file lines (without the prefix)."""
    return sorted(line.split("  dataset/", 1)[1] for line in stdout.splitlines()
                  if "  dataset/" in line and " in all for " not in line)


def test_the_dry_run_prints_exact_sizes_per_participant_totals_and_the_free_space(synthetic_dataset, tmp_path):
    with serve(synthetic_dataset) as server:
        done = dry_run(tmp_path, server.url, "-p", "17", "--cameras", CAMERAS)
        assert {r.method for r in server.requests} == {"HEAD", "GET"}
        assert {r.path for r in server.requests if r.method == "GET"} == set(INDEX)  # only the index is read
    assert done.returncode == 0, done.stderr
    files = participant_files(synthetic_dataset, 17)
    sizes = {relative: (synthetic_dataset / relative).stat().st_size for relative in files}
    lines = [line.strip() for line in done.stdout.strip().splitlines()]
    assert len(lines) == len(files) + 2  # a line per file, the participant's total, the summary
    for relative, size in sizes.items():
        assert f"{size:,} B  dataset/{relative}" in lines, relative
    total_17 = sum(size for relative, size in sizes.items() if relative.startswith("017/"))
    assert lines[-2].startswith(f"{total_17:,} B  (") and lines[-2].endswith("in all for dataset/017/ (14 files)")
    assert lines[-1].startswith("16 files, ") and f"({sum(sizes.values()):,} B) in all" in lines[-1]
    assert "0 already complete, 0 unavailable" in lines[-1]
    shown_free = re.search(r"; ([0-9.]+) GiB free at ROOT\.$", lines[-1])
    assert shown_free, lines[-1]
    assert abs(float(shown_free.group(1)) - shutil.disk_usage(tmp_path).free / 2**30) < 0.2  # the disk of ROOT
    assert not (tmp_path / "out").exists()


def test_an_unknown_sequence_is_named_in_one_line(synthetic_dataset, tmp_path):
    with serve(synthetic_dataset) as server:
        env = clean_env(tmp_path, NERSEMBLE_DATA_URL=server.url)
        done = run(cli_command("fetch", tmp_path / "out", "dataset", "-p", "17-18", "-s", "NOSUCH"), env)
        assert {r.path for r in server.requests} <= set(INDEX)
        server.clear_log()
        background = run(cli_command("fetch", tmp_path / "out", "dataset", "-p", "17", "-s", "EXP-1-head,BACKGROUND"),
                         env)
        assert server.requests == []  # refused before any request
    assert background.returncode == 2 and background.stderr.strip().splitlines() == [
        "Error: BACKGROUND is not a sequence of videos: its pictures are the asset 'backgrounds' (-a backgrounds), "
        "which is fetched by default."]
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "Error: Sequence 'NOSUCH' is not listed for any of the chosen participants in the server's "
        "metadata_sequences.csv."]
    assert not list((tmp_path / "out").rglob("*.mp4"))


def test_a_sequence_one_participant_lacks_is_named_in_one_warning(synthetic_dataset, tmp_path):
    lacking = CONFIG.sequences[2]  # participant 18's cell is empty
    with serve(synthetic_dataset) as server:
        done = dry_run(tmp_path, server.url, "-p", "17-18", "-s", lacking, "--cameras", CAMERAS, "-a", "images")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"WARNING nersemble_zarr.sources.base: Participant 18 has no sequence {lacking} in the server's "
        "metadata_sequences.csv; skipping it for that participant."]
    assert listed_paths(done.stdout) == sorted(
        [*INDEX, *(f"017/sequences/{lacking}/images/cam_{serial}.mp4" for serial in CONFIG.serials)])


def test_cameras_assets_and_all_participants_select_exactly_their_files(synthetic_dataset, tmp_path):
    serial = CONFIG.serials[2]
    with serve(synthetic_dataset) as server:
        some = dry_run(tmp_path, server.url, "-p", "18", "--cameras", serial, "-a", "calibration,backgrounds")
        every = dry_run(tmp_path, server.url, "-p", "all", "--cameras", CAMERAS)
        videos = dry_run(tmp_path, server.url, "-p", "17", "-s", "EXP-1-head", "--cameras", CAMERAS, "-a", "images")
        bad_camera = dry_run(tmp_path, server.url, "-p", "17", "--cameras", "123")
        bad_asset = dry_run(tmp_path, server.url, "-p", "17", "-a", "alpha_maps")
    assert some.returncode == every.returncode == videos.returncode == 0, some.stderr + every.stderr
    assert listed_paths(some.stdout) == sorted([*INDEX, "018/calibration/camera_params.json",
                                                f"018/sequences/BACKGROUND/image_{serial}.jpg"])
    assert listed_paths(every.stdout) == participant_files(synthetic_dataset, 17, 18)
    assert listed_paths(videos.stdout) == sorted(
        [*INDEX, *(f"017/sequences/EXP-1-head/images/cam_{s}.mp4" for s in CONFIG.serials)])
    assert [line for line in every.stdout.splitlines() if " in all for " in line][1].endswith(
        "in all for dataset/018/ (11 files)")
    assert bad_camera.returncode == bad_asset.returncode == 2
    assert "'123'" in bad_camera.stderr and "Unknown asset 'alpha_maps' for dataset" in bad_asset.stderr


# ---------------------------------------------------------------- the URL: environment, the kit's .env, no prompt
def test_the_url_comes_from_the_environment_or_the_kits_env_file_never_a_prompt(synthetic_dataset, tmp_path):
    command = cli_command("fetch", tmp_path / "out", "dataset", "-p", "17", "-a", "calibration")
    with serve(synthetic_dataset) as server:
        env = clean_env(tmp_path, NERSEMBLE_BENCHMARK_URL="http://127.0.0.1:9/not-this-one")
        missing = run(command, env, timeout=30)
        settings = tmp_path / "config" / "nersemble_data" / ".env"
        settings.parent.mkdir(parents=True)
        settings.write_text(f'NERSEMBLE_DATA_URL="{server.url}"\n')
        settings.chmod(0o600)
        from_file = run(command, env, timeout=30)
        settings.unlink()
        kits = tmp_path / "home" / ".config" / "nersemble_data" / ".env"  # where the kit reads it, whatever XDG says
        kits.parent.mkdir(parents=True)
        kits.write_text(f'NERSEMBLE_DATA_URL = "{server.url}"\n')
        from_kits_file = run([*command, "--overwrite"], env, timeout=30)
        kits.unlink()
        from_env = run([*command, "--overwrite"], {**env, "NERSEMBLE_DATA_URL": server.url}, timeout=30)
        secret = server.token
    assert missing.returncode == 2 and "No access URL: set NERSEMBLE_DATA_URL" in missing.stderr
    assert str(tmp_path / "config" / "nersemble_data" / ".env") in missing.stderr
    assert from_file.returncode == 0, from_file.stderr
    assert from_kits_file.returncode == 0 and "3 downloaded" in from_kits_file.stdout, from_kits_file.stderr
    assert from_env.returncode == 0 and "3 downloaded" in from_env.stdout, from_env.stderr
    assert (tmp_path / "out/dataset/017/calibration/camera_params.json").read_bytes() == (
        synthetic_dataset / "017/calibration/camera_params.json").read_bytes()
    assert not any(secret in done.stdout + done.stderr for done in (missing, from_file, from_kits_file, from_env))


# ---------------------------------------------------------------- the disk
def test_a_selection_that_does_not_fit_is_refused_before_any_of_its_files(synthetic_dataset, tmp_path):
    """A real tmpfs too small for participant 17: the run says so (sizes and ROOT) and writes nothing but the
    two index files it needed to plan; grown, the same command completes."""
    needed = sum((synthetic_dataset / relative).stat().st_size for relative in participant_files(synthetic_dataset, 17)
                 if relative not in INDEX)
    disk = tmp_path / "disk"
    with serve(synthetic_dataset) as server, tmpfs(disk, 40) as resize:
        env = clean_env(tmp_path, NERSEMBLE_DATA_URL=server.url)
        command = cli_command("fetch", disk, "dataset", "-p", "17", "--cameras", CAMERAS)
        refused = run(command, env)
        written = sorted(p.relative_to(disk).as_posix() for p in disk.rglob("*") if p.is_file())
        requested = {r.path for r in server.requests if r.method == "GET"}
        resize(1024)
        grown = run(command, env)
        complete = all_files(disk / "dataset")
    assert needed > 40 << 10
    assert refused.returncode == 2
    assert refused.stderr.startswith("Error: The selection needs ") and f"are free at {disk};" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert requested == set(INDEX) and written == sorted(f"dataset/{name}" for name in INDEX)
    assert grown.returncode == 0, grown.stderr
    assert complete == participant_files(synthetic_dataset, 17)
