"""docs/gaussian-avatars.md's GaussianAvatars commands, as printed, read the way GaussianAvatars reads them.

GaussianAvatars needs a CUDA GPU, so its ``train.py`` and ``render.py`` are stubbed: the page's blocks run in bash
with ``python`` (and ``nersemble-zarr``, where the block holds a placeholder syntax) recording their arguments,
from a stand-in checkout folder, and what GaussianAvatars would then read is read with the re-implementations of
tests/test_export_vhap.py: its path joins, its cameras and rasteriser, the division ``readDynamicNerfInfo`` makes
with and without ``--eval``, and the camera extent (``getNerfppNorm``) that scales its training.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nersemble_zarr import schema, storage
from nersemble_zarr.cameras import project_opencv
from nersemble_zarr.evaluation import ValidationSplit
from nersemble_zarr.export_frames import export_frames
from nersemble_zarr.flame.sequence import flame_parameters
from test_export_vhap import (
    PIXEL_TOLERANCE, assert_lands_on_the_store_pixels, export_shift, ga_load_meshes, ga_pixels, ga_read_cameras,
    ga_read_meshes, ga_vertices,
)

PAGE = Path(__file__).resolve().parent.parent / "docs" / "gaussian-avatars.md"
FENCE = re.compile(r"^```(bash|python)\s*$")
STUBS = """
record() { printf '%q ' "$@" >> "$CALLS"; printf '\\n' >> "$CALLS"; }
python() { record python "$@"; }
nersemble-zarr() { record nersemble-zarr "$@"; }
"""


def page_blocks(containing: str) -> list[str]:
    """The fenced blocks of the page that contain ``containing``."""
    lines, blocks, index = PAGE.read_text().splitlines(), [], 0
    while index < len(lines):
        if FENCE.match(lines[index]):
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            blocks.append("\n".join(lines[index + 1:end]) + "\n")
            index = end
        index += 1
    return [block for block in blocks if containing in block]


def page_block(containing: str) -> str:
    """The one fenced block of the page that contains ``containing``."""
    found = page_blocks(containing)
    assert len(found) == 1, f"{len(found)} blocks of {PAGE.name} contain {containing!r}"
    return found[0]


def run_stubbed(block: str, work: Path, home: Path) -> tuple[list[list[str]], Path]:
    """Run a bash block from ``work`` with python and nersemble-zarr recording their arguments; the calls and the
    folder the block ended in."""
    calls, cwd_file = work / "calls.txt", work / "cwd.txt"
    calls.write_text("")
    script = STUBS + block + f'\npwd > "{cwd_file}"\n'
    result = subprocess.run(["bash", "-e", "-c", script], cwd=work, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "HOME": str(home), "CALLS": str(calls)})
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in calls.read_text().splitlines()], Path(cwd_file.read_text().strip())


def option(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]


@pytest.fixture(scope="module")
def reference_flame(plain_standin_dir):
    from flame_model import FLAME, FlameConfig

    return FLAME(FlameConfig(flame_folder=str(plain_standin_dir), shape_params=300, expression_params=100,
                             batch_size=1))


@pytest.fixture(scope="module")
def work(converted, standin_dir, tmp_path_factory) -> dict[str, Path]:
    """A reader's folder (nersemble.zarr, data/) after step 5 ran as printed, and a stand-in GaussianAvatars
    checkout in HOME."""
    folder = tmp_path_factory.mktemp("reader")
    (folder / "nersemble.zarr").symlink_to(converted, target_is_directory=True)
    home = tmp_path_factory.mktemp("home")
    (home / "GaussianAvatars").mkdir()
    step_5 = page_block("--render-target -p 393 -s FREE")
    env = {**os.environ, "NERSEMBLE_FLAME_DIR": str(standin_dir),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["bash", "-e", "-c", step_5], cwd=folder, capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return {"folder": folder, "home": home}


def test_step_5_render_target_lands_within_half_a_pixel_in_gaussianavatars(work, converted, reference_flame,
                                                                          cpu_model):
    """GaussianAvatars ignores cx, cy: the printed render target must centre them (point 14)."""
    target = work["folder"] / "data" / "393_FREE"
    views = [camera for name in ("train", "val", "test") for camera in ga_read_cameras(target, f"transforms_{name}.json")]
    meshes = {**ga_read_meshes(target, "transforms_train.json"), **ga_read_meshes(target, "transforms_test.json")}
    params = ga_load_meshes(meshes, {}, 5023)
    free = storage.open_dataset(converted, schema.level_group(1, "mono_flame_avatar", 393, "FREE"))
    store_vertices = cpu_model.evaluate(flame_parameters(free)).vertices.astype(np.float64)
    timesteps, serials = [int(t) for t in free[schema.TIMESTEP].values], [str(s) for s in free[schema.SERIAL].values]
    assert views and json.loads((target / "nersemble_export.json").read_text())["background"] == "white"
    for camera in views:
        frame, index = camera["frame"], serials.index(camera["frame"]["camera_id"])
        stored_k = free[schema.INTRINSICS].values[index]
        expected, _ = project_opencv(store_vertices[timesteps.index(frame["timestep_index_original"])],
                                     free[schema.WORLD_2_CAM].values[index], stored_k)
        vertices = ga_vertices(reference_flame, params, camera["timestep"])
        assert_lands_on_the_store_pixels(target, camera, vertices, expected, stored_k)
        shifted = expected - export_shift(target, frame["camera_id"])
        assert np.abs(ga_pixels(camera, vertices) - shifted).max() <= 0.5 + PIXEL_TOLERANCE


def test_steps_4_6_and_7_give_gaussianavatars_paths_it_can_open(work):
    """Run from its checkout, GaussianAvatars finds the training folder and every image of the render target
    (it joins --target_path onto each image path twice, so only an absolute path works) (point 14)."""
    folder, home = work["folder"], work["home"]
    trained = []
    for block in page_blocks("python train.py"):
        training, checkout = run_stubbed(block, folder, home)
        assert checkout == home / "GaussianAvatars"
        for train in (call for call in training if call[:2] == ["python", "train.py"]):
            assert "--eval" in train  # held-out sequences or frames stay out of training
            # train.py makes -s absolute from where it runs
            trained.append(Path(os.path.normpath(os.path.join(checkout, option(train, "-s")))))
    assert trained == [folder / "data" / "393_UNION", folder / "data" / "393_EXP-1-head_val"]
    rendering, checkout = run_stubbed(page_block("--target_path"), folder, home)
    assert checkout == home / "GaussianAvatars"
    render = next(call for call in rendering if call[:2] == ["python", "render.py"])
    target = option(render, "--target_path")
    cwd = os.getcwd()
    os.chdir(checkout)
    try:
        views = ga_read_cameras(Path(target), "transforms_train.json")
        assert views and all(camera["image_path"].is_file() for camera in views)
    finally:
        os.chdir(cwd)
    # render.py writes MODEL/<basename of the target>/..., which export-submission reads through the same target
    submission = next(call for call in rendering if call[:2] == ["nersemble-zarr", "export-submission"])
    assert option(submission, "--render-target") == target
    assert os.path.basename(os.path.normpath(target)) == "393_FREE"
    assert Path(option(submission, "--store")).resolve() == (folder / "nersemble.zarr").resolve()


def training_division(path: Path, eval: bool) -> list[dict]:
    """GaussianAvatars' readDynamicNerfInfo: its training cameras, with val and test appended without --eval."""
    train = ga_read_cameras(path, "transforms_train.json")
    if eval:
        return train
    return train + ga_read_cameras(path, "transforms_val.json") + ga_read_cameras(path, "transforms_test.json")


def camera_extent(cameras: list[dict]) -> float:
    """GaussianAvatars' getNerfppNorm radius: camera centres from getWorld2View2(R, T), 1.1 x the largest
    distance from their mean."""
    centres = []
    for camera in cameras:
        world_2_view = np.eye(4)
        world_2_view[:3, :3], world_2_view[:3, 3] = camera["R"].T, camera["T"]
        centres.append(np.linalg.inv(world_2_view)[:3, 3:4])
    centres = np.hstack(centres)
    return float(np.max(np.linalg.norm(centres - centres.mean(axis=1, keepdims=True), axis=0)) * 1.1)


def test_without_eval_gaussianavatars_trains_on_the_held_out_frames_twice(converted, standin_dir, tmp_path):
    """The documented reason to pass --eval with a --split export (point 16)."""
    root = tmp_path / "393_EXP-1-head_val"
    export_frames(converted, root, participant=393, sequence="EXP-1-head",
                  validation=ValidationSplit("mono_flame_avatar", trailing_frames=2), flame_dir=standin_dir, workers=2)
    held_out = {(f["timestep_index"], f["camera_index"])
                for f in json.loads((root / "transforms_val.json").read_text())["frames"]}
    assert held_out

    def counts(eval: bool) -> Counter:
        return Counter((c["timestep"], c["frame"]["camera_index"]) for c in training_division(root, eval))

    assert all(counts(False)[view] == 2 for view in held_out)
    assert not held_out & set(counts(True))
    assert "**Always pass `--eval` with a `--split` export**" in PAGE.read_text()


def vhap_monocular_export_frames(translations: np.ndarray, size: int = 512, focal_length: float = 2.0) -> list[dict]:
    """The frames VHAP's TrackedFLAMEDatasetWriter writes for an uncalibrated (monocular) video: replace_cam_params
    puts every frame's camera at c2w = identity with z = 1 (cx = w / 2, cy = h / 2, focal from the tracked
    focal length), then relocate_flame_meshes' M (a translation by minus the mean FLAME translation) is applied."""
    relocation = np.eye(4)
    relocation[:3, 3] = -translations.mean(axis=0)
    frames = []
    for index in range(len(translations)):
        c2w = np.eye(4)
        c2w[2, 3] = 1
        fl = focal_length * size
        frames.append({"timestep_index": index, "camera_index": 0, "camera_id": "0", "cx": size / 2, "cy": size / 2,
                       "fl_x": fl, "fl_y": fl, "h": size, "w": size,
                       "camera_angle_x": float(np.arctan(size / (fl * 2)) * 2),
                       "camera_angle_y": float(np.arctan(size / (fl * 2)) * 2),
                       "transform_matrix": (relocation @ c2w).tolist(), "file_path": f"images/{index:05d}_00.png"})
    return frames


def test_camera_extent_is_zero_for_mono_as_for_vhaps_own_monocular_exports(converted, standin_dir, tmp_path):
    """A mono export's extent is 0, as VHAP's monocular exports' is; NVS's is positive; the page's snippet
    computes GaussianAvatars' number (point 16)."""
    mono, nvs, vhap = tmp_path / "393_EXP-1-head", tmp_path / "388_GLASSES", tmp_path / "vhap_monocular"
    export_frames(converted, mono, participant=393, sequence="EXP-1-head", flame_dir=standin_dir, workers=2)
    export_frames(converted, nvs, participant=388, workers=2)
    vhap.mkdir()
    translations = np.random.default_rng(4).normal(scale=0.02, size=(30, 3))
    (vhap / "transforms_train.json").write_text(json.dumps({"frames": vhap_monocular_export_frames(translations)}))
    extents = {name: camera_extent(training_division(folder, eval=True))
               for name, folder in (("mono", mono), ("nvs", nvs), ("vhap", vhap))}
    assert extents["mono"] < 1e-9 and extents["vhap"] < 1e-9
    assert extents["nvs"] > 0.01
    snippet = page_block("def camera_extent")
    namespace: dict = {}
    exec(snippet.split("print(")[0], namespace)
    for name, folder in (("mono", mono), ("nvs", nvs), ("vhap", vhap)):
        assert namespace["camera_extent"](str(folder)) == pytest.approx(extents[name], abs=1e-12)
