"""No command replaces or removes a file it did not create without --overwrite (issue 22, cases 2, 3, 4, 18, 23;
issue 23, point 7: preview into a missing folder).

One rule for every file a command writes (``outputs.claim_output_file``), checked before the work: an existing
file needs --overwrite, an output that is one of the command's own inputs is refused even with it, and the output's
folder must exist, be a folder and take a new file. Each test runs the CLI and checks the exit code, the one
``Error:`` line and that every file of the workspace is byte for byte as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from helpers import run_cli, serving_synthetic
from test_reliability_outputs import assert_one_error_line, snapshot

USER_TEXT = b"the user's own file\n"


def user_file(path: Path, data: bytes = USER_TEXT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ------------------------------------------------------------- case 4: an existing output needs --overwrite
def test_evaluate_refuses_to_write_its_json_over_the_predictions_zip_even_with_overwrite(tmp_path):
    predictions, store = user_file(tmp_path / "mypreds.zip"), tmp_path / "store"
    store.mkdir()
    before = snapshot(tmp_path)
    for extra in ([], ["--overwrite"]):
        result = run_cli("evaluate", predictions, "--store", store, "-b", "nvs", "--json", predictions, *extra)
        assert_one_error_line(result, 2, f"The --json output {predictions} is also an input of this command")
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize("option", ["--json", "--csv", "--plot"])
def test_evaluate_refuses_an_existing_output_before_evaluating(tmp_path, option):
    """The store is an empty folder: had the evaluation run first, its error would be about the store."""
    predictions, store = user_file(tmp_path / "preds.zip"), tmp_path / "store"
    store.mkdir()
    output = user_file(tmp_path / "scores.out")
    before = snapshot(tmp_path)
    result = run_cli("evaluate", predictions, "--store", store, "-b", "nvs", option, output)
    assert_one_error_line(result, 2, f"The {option} output {output} exists; pass --overwrite to replace it.")
    assert snapshot(tmp_path) == before


def test_evaluate_refuses_two_outputs_at_one_path(tmp_path):
    predictions, store = user_file(tmp_path / "preds.zip"), tmp_path / "store"
    store.mkdir()
    result = run_cli("evaluate", predictions, "--store", store, "-b", "nvs", "--json", tmp_path / "a",
                     "--csv", tmp_path / "a")
    assert_one_error_line(result, 2, "--json and --csv name the same file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.zip", "store"]


def test_split_replaces_an_existing_file_only_with_overwrite(tmp_path):
    target = user_file(tmp_path / "split.json")
    result = run_cli("split", target, "-b", "nvs", "--trailing-frames", 2)
    assert_one_error_line(result, 2, f"The split file {target} exists; pass --overwrite to replace it.")
    assert target.read_bytes() == USER_TEXT
    run_cli("split", target, "-b", "nvs", "--trailing-frames", 2, "--overwrite", exit_code=0)
    assert json.loads(target.read_text())["trailing_frames"] == 2


def test_split_replaces_another_split_of_a_store_only_with_overwrite(converted, tmp_path):
    import shutil

    store = tmp_path / "store.zarr"
    shutil.copytree(converted, store)
    run_cli("split", store, "-b", "nvs", "--trailing-frames", 2, exit_code=0)
    run_cli("split", store, "-b", "nvs", "--trailing-frames", 2, exit_code=0)  # the same split again: nothing lost
    before = snapshot(store)
    result = run_cli("split", store, "-b", "nvs", "--trailing-frames", 3)
    assert_one_error_line(result, 2, f"The store {store} already holds another validation split; pass --overwrite")
    assert snapshot(store) == before
    run_cli("split", store, "-b", "nvs", "--trailing-frames", 3, "--overwrite", exit_code=0)


def test_export_mesh_and_preview_refuse_an_existing_file_before_reading_the_store(tmp_path):
    """The store does not exist: had the work come first, the error would name the store."""
    mesh, picture = user_file(tmp_path / "mesh.ply"), user_file(tmp_path / "sheet.png")
    before = snapshot(tmp_path)
    store = tmp_path / "missing.zarr"
    commands = {mesh: ["export-mesh", store, "-p", 393, "-s", "EXP-1-head", "-t", 0, "-o", mesh],
                picture: ["preview", store, "-p", 388, "-o", picture]}
    for output, arguments in commands.items():
        result = run_cli(*arguments)
        assert_one_error_line(result, 2, f"The output {output} exists; pass --overwrite to replace it.")
    result = run_cli("preview-rig", store, "-p", 388, "-o", picture)
    assert_one_error_line(result, 2, f"The output {picture} exists; pass --overwrite to replace it.")
    assert snapshot(tmp_path) == before


def test_view_refuses_an_existing_recording_named_or_by_default_before_reading_the_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    named, default = user_file(tmp_path / "mine.rrd"), user_file(tmp_path / "388_GLASSES.rrd")
    before = snapshot(tmp_path)
    for output, save in ((named, ["--save", named]), (default, [])):
        result = run_cli("view", tmp_path / "missing.zarr", "-b", "nvs", "-p", 388, *save)
        assert_one_error_line(result, 2, f"The output {output.name if not save else output} exists; pass --overwrite")
    assert snapshot(tmp_path) == before


def test_preview_replaces_an_existing_picture_with_overwrite(converted, tmp_path):
    picture = user_file(tmp_path / "sheet.png")
    run_cli("preview", converted, "-p", 388, "-o", picture, "--overwrite", exit_code=0)
    assert imagecodecs.png_decode(picture.read_bytes()).ndim == 3


# ---------------------------------------------- issue 23 point 7 and case 18: the folder of a file output
def test_preview_into_a_missing_folder_creates_nothing(tmp_path):
    output = tmp_path / "nonexistent" / "dir" / "x.png"
    result = run_cli("preview", tmp_path / "store.zarr", "-p", 388, "-o", output)
    assert_one_error_line(result, 2, f"The folder of the output {output} does not exist; create it first.")
    assert list(tmp_path.iterdir()) == []


def parent_is_a_file_commands(work: Path, blocker: Path) -> dict[str, list]:
    predictions, store = user_file(work / "preds.zip"), work / "store"
    store.mkdir(exist_ok=True)
    return {
        "evaluate --json": ["evaluate", predictions, "--store", store, "-b", "nvs", "--json", blocker / "s.json"],
        "evaluate --plot": ["evaluate", predictions, "--store", store, "-b", "nvs", "--plot", blocker / "s.png"],
        "split": ["split", blocker / "split.json", "-b", "nvs", "--trailing-frames", 2],
        "export-mesh": ["export-mesh", store, "-p", 393, "-s", "EXP-1-head", "-t", 0, "-o", blocker / "m.ply"],
        "preview": ["preview", store, "-p", 388, "-o", blocker / "x.png"],
    }


@pytest.mark.parametrize("command", ["evaluate --json", "evaluate --plot", "split", "export-mesh", "preview"])
def test_an_output_whose_folder_is_a_file_is_one_line(tmp_path, command):
    blocker = user_file(tmp_path / "notes.txt")
    arguments = parent_is_a_file_commands(tmp_path, blocker)[command]
    before = snapshot(tmp_path)
    result = run_cli(*arguments)
    assert_one_error_line(result, 2, f"The folder of the", f"{blocker}/", "is a regular file, not a folder")
    assert snapshot(tmp_path) == before


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder that takes no new file: read-only by its mode, or (as root, whom modes do not stop) /sys."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    try:
        tempfile.TemporaryFile(dir="/sys").close()
    except OSError:
        yield Path("/sys")
    else:
        pytest.skip("no folder refuses a new file here")


@pytest.mark.parametrize("command", ["evaluate --json", "evaluate --plot", "split", "export-mesh", "preview"])
def test_an_output_in_an_unwritable_folder_is_one_line_before_the_work(tmp_path, unwritable, command):
    work = tmp_path / "work"
    work.mkdir()
    arguments = parent_is_a_file_commands(work, unwritable)[command]
    before = snapshot(work)
    result = run_cli(*arguments)
    assert_one_error_line(result, 1, "Cannot write the", f"{unwritable}/", "its folder does not take a new file")
    assert snapshot(work) == before


# ------------------------------------------------------------------ case 2: serve-synthetic's --env-file
def test_serve_synthetic_never_replaces_an_existing_env_file(tmp_path):
    env_file = user_file(tmp_path / ".config" / "nersemble_benchmark" / ".env",
                         b'NERSEMBLE_BENCHMARK_URL="https://the-real-secret"\n')
    before = snapshot(tmp_path)
    result = run_cli("serve-synthetic", tmp_path, "--env-file", env_file)
    assert_one_error_line(result, 2, f"The environment file {env_file} exists; pass --overwrite to replace it.")
    assert snapshot(tmp_path) == before


def test_serve_synthetic_leaves_a_file_it_did_not_write_when_it_stops(synthetic_root, tmp_path):
    """The env file the server wrote is replaced by the user's while it runs: stopping removes nothing."""
    env_file = tmp_path / "synthetic.env"
    with serving_synthetic(synthetic_root, env_file) as (server, output):
        assert env_file.stat().st_size
        user_file(tmp_path / "mine.env")
        os.replace(tmp_path / "mine.env", env_file)
    assert server.returncode == 0, output["stderr"]
    assert env_file.read_bytes() == USER_TEXT


# ----------------------------------------------------------------------------------- case 3: combine-vhap
def vhap_export(folder: Path, transforms: object | None = None) -> Path:
    """A minimal VHAP export: canonical FLAME parameters and a transforms.json of two frames of one camera."""
    folder.mkdir(parents=True)
    (folder / "canonical_flame_param.npz").write_bytes(b"npz of the export")
    pose = np.eye(4)
    pose[2, 3] = 1.0
    frames = [{"timestep_index": t, "timestep_index_original": t, "timestep_id": f"frame_{t:05d}",
               "camera_index": 0, "camera_id": "222200037", "file_path": f"images/{t:05d}_00.png",
               "fl_x": 500.0, "fl_y": 500.0, "cx": 50.0, "cy": 60.0, "w": 100, "h": 120,
               "transform_matrix": pose.tolist()} for t in (0, 1)]
    document = {"timestep_indices": [0, 1], "camera_indices": [0], "frames": frames} if transforms is None \
        else transforms
    text = document if isinstance(document, str) else json.dumps(document)
    (folder / "transforms.json").write_text(text)
    (folder / "transforms_train.json").write_text(text)
    return folder


def test_combine_vhap_refuses_a_source_as_its_target(tmp_path):
    source = vhap_export(tmp_path / "393_A")
    before = snapshot(tmp_path)
    result = run_cli("combine-vhap", source, source)
    assert_one_error_line(result, 2, f"The target {source} is also one of the exports to combine")
    result = run_cli("combine-vhap", source, vhap_export(tmp_path / "393_B"), "--test", source)
    assert_one_error_line(result, 2, f"The target {source} is also one of the exports to combine")
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("393_B")} == before


def test_combine_vhap_refuses_a_target_holding_the_users_files_and_reruns_into_its_own(tmp_path):
    source = vhap_export(tmp_path / "393_A")
    target = tmp_path / "393_UNION"
    user_file(target / "transforms_train.json")
    user_file(target / "sequences_test.txt")
    before = snapshot(tmp_path)
    result = run_cli("combine-vhap", target, source)
    assert_one_error_line(result, 2, f"{target} exists and is not a union written by combine-vhap")
    assert snapshot(tmp_path) == before
    ours = tmp_path / "393_OURS"
    run_cli("combine-vhap", ours, source, exit_code=0)
    run_cli("combine-vhap", ours, source, exit_code=0)  # a rerun rewrites the union it wrote
    assert json.loads((ours / "transforms_train.json").read_text())["timestep_indices"] == [0, 1]


@pytest.mark.parametrize(("document", "problem"), [
    ("[" * 100_000 + "]" * 100_000, "nests deeper than 16 levels"),
    ({"frames": [{}], "timestep_indices": [0]}, "frame 0 has no 'timestep_index'"),
    ({"frames": [{"timestep_index": 0, "camera_index": 0}]}, "'timestep_indices' is not a list of whole numbers"),
    ([1, 2], "holds a list, not a JSON object"),
])
def test_combine_vhap_refuses_a_broken_source_and_creates_no_target(tmp_path, document, problem):
    source = vhap_export(tmp_path / "393_A", document)
    before = snapshot(tmp_path)
    result = run_cli("combine-vhap", tmp_path / "393_UNION", source)
    assert_one_error_line(result, 1, str(source / "transforms.json"), problem)
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------- case 23: export-submission --render-target
@pytest.fixture(scope="module")
def render_target(converted, standin_dir, tmp_path_factory) -> tuple[Path, Path]:
    """A render target of 393/FREE and GaussianAvatars' renders of its views (render.py's layout)."""
    from nersemble_zarr.export_frames import export_frames

    parent = tmp_path_factory.mktemp("render")
    target = parent / "393_FREE"
    export_frames(converted, target, format="vhap", participant=393, sequence="FREE", render_target=True,
                  flame_dir=standin_dir, workers=1)
    views = [frame for name in ("transforms_train.json", "transforms_val.json", "transforms_test.json")
             for frame in json.loads((target / name).read_text())["frames"]]
    renders = parent / "model" / target.name / "ours_100" / "renders"
    renders.mkdir(parents=True)
    for i, view in enumerate(views):
        picture = np.full((view["h"], view["w"], 3), 40 + 30 * (i % 6), dtype=np.uint8)
        (renders / f"{i:05d}.png").write_bytes(imagecodecs.png_encode(picture))
    return parent / "model", target


def render_submission(model: Path, target: Path, converted: Path, output: Path):
    view = json.loads((target / "transforms_train.json").read_text())["frames"][0]
    return run_cli("export-submission", model, output, "-b", "mono_flame_avatar", "--store", converted, "--partial",
                   "--resolution", f"{view['w']}x{view['h']}", "--render-target", target)


@pytest.mark.parametrize(("settings", "problem"), [
    ("[" * 100_000 + "]" * 100_000, "nests deeper than 16 levels"),
    ("[1, 2]", "holds a list, not a JSON object"),
    ('{"render_target": true, "participant": "x"}', "does not name a participant, a sequence"),
])
def test_a_broken_render_target_settings_file_is_one_line(render_target, converted, tmp_path, settings, problem):
    import shutil

    model, original = render_target
    target = tmp_path / original.name
    shutil.copytree(original, target)
    shutil.copytree(model / original.name, tmp_path / "model" / original.name)
    (target / "nersemble_export.json").write_text(settings)
    result = render_submission(tmp_path / "model", target, converted, tmp_path / "submission.zip")
    assert_one_error_line(result, 1, str(target / "nersemble_export.json"), problem)
    assert not (tmp_path / "submission.zip").exists()


def test_renders_of_mixed_sizes_are_one_line(render_target, converted, tmp_path):
    import shutil

    model, target = render_target
    shutil.copytree(model, tmp_path / "model")
    renders = sorted((tmp_path / "model").rglob("renders/*.png"))
    odd = renders[-1]
    height, width = imagecodecs.png_decode(odd.read_bytes()).shape[:2]
    odd.write_bytes(imagecodecs.png_encode(np.zeros((height + 2, width + 4, 3), dtype=np.uint8)))
    result = render_submission(tmp_path / "model", target, converted, tmp_path / "submission.zip")
    assert_one_error_line(result, 1, f"Rendered image {odd} has size {width + 4}x{height + 2}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
