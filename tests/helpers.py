"""Plain helpers shared by test modules (fixtures live in conftest.py): running the CLI, digests of files and
arrays, a progress recorder, prediction stores, the sequences of the mesh_input fixture."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from click.testing import CliRunner, Result
from nersemble_zarr import schema
from nersemble_zarr.cli.main import main

MESH_SEQUENCES = {(393, "EXP-1-head"): 150, (404, "FREE"): 100}  # the mesh_input fixture: 5 + 4 chunks of 32 timesteps


def run_cli(*args, env: dict[str, str] | None = None, exit_code: int | None = None) -> Result:
    """Invoke ``nersemble-zarr ARGS`` in this process; check that no exception escaped and no traceback was
    printed (unless --debug) and, when given, the exit code."""
    arguments = [str(arg) for arg in args]
    result = CliRunner().invoke(main, arguments, env=env)
    if "--debug" not in arguments:  # an error is one line and an exit code, never an escaped exception
        assert "Traceback" not in result.output, result.output
        assert isinstance(result.exception, (SystemExit, type(None))), (result.exception, result.output)
    if exit_code is not None:
        assert result.exit_code == exit_code, result.output
    return result


class ProgressRecorder:
    """A progress callback (the package's protocol) recording planned totals, descriptions and every count."""

    def __init__(self) -> None:
        self.totals: list[int] = []
        self.texts: list[str] = []
        self.counts: list[int] = []

    def set_total(self, total: int) -> None:
        self.totals.append(total)

    def describe(self, text: str) -> None:
        self.texts.append(text)

    def __call__(self, advance: int) -> None:
        self.counts.append(advance)

    @property
    def done(self) -> int:
        return sum(self.counts)


@contextlib.contextmanager
def serving_synthetic(root: Path, env_file: Path) -> Iterator[tuple[subprocess.Popen, dict[str, str]]]:
    """Run ``nersemble-zarr serve-synthetic ROOT --env-file ENV_FILE`` in its own process until the block ends,
    entering once the env file is written (or the server ended); afterwards the dict holds its ``stdout`` and
    ``stderr``."""
    server = subprocess.Popen(
        [sys.executable, "-m", "nersemble_zarr.cli", "serve-synthetic", str(root), "--env-file", str(env_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 120
        while not (env_file.exists() and env_file.stat().st_size) and server.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        yield server, output
    finally:
        server.terminate()
        output["stdout"], output["stderr"] = server.communicate(timeout=60)


def file_digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def tree_digest(folder: Path) -> dict[str, str]:
    """sha1 of every file below ``folder`` (relative POSIX path -> digest); an absent folder is empty."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    if folder.is_file():
        return {folder.name: file_digest(folder)}
    return {p.relative_to(folder).as_posix(): file_digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def array_digest(values: np.ndarray) -> str:
    """sha1 of an array's values and dtype."""
    values = np.ascontiguousarray(values)
    return hashlib.sha1(values.tobytes() + str(values.dtype).encode()).hexdigest()


def store_digests(store: Path | str, group: str | None = None) -> dict[str, str]:
    """Digest of the values of every array of a zarr store (or of one group and its subgroups), keyed by
    array path; metadata is read unconsolidated."""
    root = zarr.open_group(store, path=group or "", mode="r", use_consolidated=False)
    return {
        path: array_digest(node[...])
        for path, node in root.members(max_depth=None)
        if isinstance(node, zarr.Array)
    }


def meshes_in_consolidated_metadata(store: Path) -> bool:
    """Whether readers of the consolidated metadata (plain ``xr.open_datatree``) see the meshes of every
    sequence of ``MESH_SEQUENCES``."""
    tree = xr.open_datatree(store, engine="zarr")
    return all(schema.VERTICES in tree[schema.sequence_group("mono_flame_avatar", *key)].dataset
               for key in MESH_SEQUENCES)


def predictions_dataset(serials, images: np.ndarray, timesteps=None) -> xr.Dataset:
    """Predicted frames ``images`` (serial, timestep, y, x, channel) of one sequence as a Dataset."""
    coords = {schema.SERIAL: np.array(list(serials), dtype=object)}
    if timesteps is not None:
        coords[schema.TIMESTEP] = np.asarray(timesteps)
    return xr.Dataset(
        {schema.IMAGES: ((schema.SERIAL, schema.TIMESTEP, schema.Y, schema.X, schema.CHANNEL), images)}, coords=coords
    )


def write_predictions(path: Path, groups: dict[str, xr.Dataset], encoding: dict | None = None) -> Path:
    """A predictions store: one Dataset per sequence group, laid out like a converted store."""
    xr.DataTree.from_dict(groups).to_zarr(path, encoding=encoding, consolidated=False)
    return path
