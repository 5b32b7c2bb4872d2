"""Crash campaign: ``convert`` and ``meshes`` killed with SIGKILL at seeded points, then rerun.

Each episode starts from an empty (convert) or mesh-less (meshes) store and kills the real process
several times in a row, each run resuming what the killed one left. After every kill, whatever the
store flags as complete (a camera's ``images_converted``/``alpha_converted``, a group's ``converted``,
a sequence's ``vertices_complete``, a written vertex chunk) must hold exactly the clean run's data.
After the episode a plain rerun must complete, and the store must equal a clean one array by array.

Fast setting (CI, to stay within its time budget): 6 convert episodes x 3 kills and 4 meshes episodes x 3
kills = 30 kill points. Long setting (``NERSEMBLE_CAMPAIGN=long``): 20 x 3 and 12 x 3 = 96 kill points.

The meshes campaign found that a kill between setting ``vertices_complete`` and refreshing the consolidated
metadata left the meshes invisible to plain ``xr.open_datatree`` while reruns skipped the sequence as
complete; ``meshes`` now refreshes the metadata also when nothing is left to do, and
``test_meshes_rerun_refreshes_stale_consolidated_metadata`` keeps that state covered.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from campaign import campaign_size, report, store_attributes
from crash_campaign import KillPoint, cli_command, count_files, run_and_kill
from helpers import MESH_SEQUENCES, array_digest, meshes_in_consolidated_metadata, run_cli, store_digests
from nersemble_zarr import schema
from nersemble_zarr.schema import converted_flag
from nersemble_zarr.flame.store import CHUNK_TIMESTEPS, COMPLETE_ATTR

KILLS_PER_EPISODE = 3
CONVERT_EPISODES = campaign_size(fast=6, long=20)
MESH_EPISODES = campaign_size(fast=4, long=12)


# ------------------------------------------------------------------------------------------------ convert
def wrong_flagged_cameras(store: Path, clean: Path) -> list[str]:
    """Cameras and groups the killed store flags as complete whose data differ from the clean store's."""
    wrong = []
    clean_root = zarr.open_group(clean, mode="r", use_consolidated=False)
    for path, clean_group in clean_root.members(max_depth=None):
        if not isinstance(clean_group, zarr.Group) or schema.TIMESTEP not in clean_group:
            continue
        try:
            group = zarr.open_group(store, path=path, mode="r", use_consolidated=False)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            continue
        if group.attrs.get("converted"):
            wrong += [f"{path}/{name}" for name, array in clean_group.arrays()
                      if name not in group or array_digest(group[name][...]) != array_digest(array[...])]
        for variable in (schema.IMAGES, schema.ALPHA):
            flag = converted_flag(variable)
            if flag not in group:
                continue
            for index in np.flatnonzero(group[flag][...]):
                if array_digest(group[variable][index]) != array_digest(clean_group[variable][index]):
                    wrong.append(f"{path}/{variable}[{index}]")
    return wrong


def test_convert_survives_sigkill_at_seeded_points(synthetic_root, converted, tmp_path):
    expected_files = count_files(converted)
    clean_digests, clean_attrs = store_digests(converted), store_attributes(converted)
    kills = landed = interrupted = completed_early = temporaries = 0
    for episode in range(CONVERT_EPISODES):
        store = tmp_path / f"episode-{episode}.zarr"
        for kill in range(KILLS_PER_EPISODE):
            point = KillPoint.draw(1000 * episode + kill, count_files(store), expected_files)
            outcome = run_and_kill(cli_command("convert", synthetic_root, store, "-j", "2"), store, point)
            kills += 1
            landed += outcome.killed
            interrupted += outcome.killed and outcome.files_at_kill < expected_files
            completed_early += not outcome.killed
            assert outcome.killed or outcome.returncode == 0, outcome.stderr
            if store.exists():
                assert wrong_flagged_cameras(store, converted) == [], point
        run_cli("convert", synthetic_root, store, "-j", "2", exit_code=0)
        temporaries += len(list(store.rglob("*.partial")))  # zarr's own temporaries of the killed writes
        assert not list(store.rglob(".*.part*")), "the rerun removed the shard temporaries of the killed runs"
        assert store_digests(store) == clean_digests, f"episode {episode}"
        assert store_attributes(store) == clean_attrs, f"episode {episode}"
        shutil.rmtree(store)
    report("convert-sigkill", episodes=CONVERT_EPISODES, kill_points=kills, killed_mid_run=landed,
           killed_before_complete_output=interrupted,
           ended_before_kill=completed_early, wrong_data_after_kill=0, final_stores_equal_clean=CONVERT_EPISODES,
           stray_zarr_temporaries_left=temporaries)
    assert interrupted > 0, "no kill stopped a run whose output was still incomplete: nothing was resumed"


# ------------------------------------------------------------------------------------------------ meshes
def meshes_args(store: Path, flame_dir: Path) -> list:
    return ["meshes", store, "--flame-dir", flame_dir, "--device", "cpu", "--batch-size", CHUNK_TIMESTEPS,
            "--threads", "1"]


@pytest.fixture(scope="module")
def clean_meshes(mesh_input, standin_dir, tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("mesh-clean") / "clean.zarr"
    shutil.copytree(mesh_input, store)
    run_cli(*meshes_args(store, standin_dir), exit_code=0)
    return store


def wrong_mesh_chunks(store: Path, clean: Path) -> list[str]:
    """Vertex chunks written (not NaN) or sequences flagged complete whose values differ from the clean run."""
    wrong = []
    for participant, sequence in MESH_SEQUENCES:
        path = schema.sequence_group("mono_flame_avatar", participant, sequence)
        group = zarr.open_group(store, path=path, mode="r", use_consolidated=False)
        clean_group = zarr.open_group(clean, path=path, mode="r", use_consolidated=False)
        if schema.VERTICES not in group:
            assert not group.attrs.get(COMPLETE_ATTR), path
            continue
        vertices, expected = group[schema.VERTICES][...], clean_group[schema.VERTICES][...]
        for start in range(0, len(expected), CHUNK_TIMESTEPS):
            chunk = vertices[start:start + CHUNK_TIMESTEPS]
            written = not np.isnan(chunk).all()
            if (written or group.attrs.get(COMPLETE_ATTR)) and not np.allclose(
                    chunk, expected[start:start + CHUNK_TIMESTEPS], atol=1e-6):
                wrong.append(f"{path}/vertices[{start}:]")
    return wrong


def test_meshes_survives_sigkill_at_seeded_points(mesh_input, clean_meshes, standin_dir, tmp_path):
    expected_files = count_files(clean_meshes)
    clean_digests = store_digests(clean_meshes)
    kills = landed = interrupted = 0
    for episode in range(MESH_EPISODES):
        store = tmp_path / f"episode-{episode}.zarr"
        shutil.copytree(mesh_input, store)
        for kill in range(KILLS_PER_EPISODE):
            point = KillPoint.draw(5000 + 1000 * episode + kill, count_files(store), expected_files)
            outcome = run_and_kill(cli_command(*meshes_args(store, standin_dir)), store, point)
            kills += 1
            landed += outcome.killed
            interrupted += outcome.killed and outcome.files_at_kill < expected_files
            assert outcome.killed or outcome.returncode == 0, outcome.stderr
            assert wrong_mesh_chunks(store, clean_meshes) == [], point
        run_cli(*meshes_args(store, standin_dir), exit_code=0)
        digests = store_digests(store)
        assert digests.keys() == clean_digests.keys()
        for path, digest in digests.items():
            if digest != clean_digests[path]:  # a resumed run batches other timesteps together: float rounding
                np.testing.assert_allclose(zarr.open_array(store, path=path, mode="r")[...],
                                           zarr.open_array(clean_meshes, path=path, mode="r")[...], atol=1e-6)
        assert meshes_in_consolidated_metadata(store), f"episode {episode}: readers do not see the meshes"
        shutil.rmtree(store)
    report("meshes-sigkill", episodes=MESH_EPISODES, kill_points=kills, killed_mid_run=landed,
           killed_before_complete_output=interrupted,
           wrong_data_after_kill=0, final_stores_equal_clean=MESH_EPISODES)
    assert interrupted > 0, "no kill stopped a run whose output was still incomplete: nothing was resumed"


def test_meshes_rerun_refreshes_stale_consolidated_metadata(mesh_input, clean_meshes, standin_dir, tmp_path):
    """The state a SIGKILL between ``vertices_complete = True`` and the metadata refresh leaves (seen in the
    campaign): every sequence flagged complete, the root's consolidated metadata from before the meshes."""
    store = Path(shutil.copytree(clean_meshes, tmp_path / "stale.zarr"))
    shutil.copyfile(mesh_input / "zarr.json", store / "zarr.json")
    run_cli(*meshes_args(store, standin_dir), exit_code=0)
    assert meshes_in_consolidated_metadata(store)
