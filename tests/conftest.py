"""Fixtures shared by the whole test suite, built once per session: the tiny synthetic benchmark, its converted
store, the FLAME stand-in model and a store of FLAME tracking without meshes."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import MESH_SEQUENCES
from nersemble_zarr import schema
from nersemble_zarr.convert import DatasetOptions, convert
from nersemble_zarr.flame.lbs import FlameModel
from nersemble_zarr.flame.standin import write_standin_flame
from nersemble_zarr.store import consolidate, prepare_store
from nersemble_zarr.synthetic import SyntheticConfig, generate
from test_flame_support import sequence_dataset


@pytest.fixture(scope="session")
def synthetic_config() -> SyntheticConfig:
    """The tiny synthetic config (NVS 388, mono 393 EXP-1-head + FREE, 6 frames, 1/10 resolution)."""
    return SyntheticConfig.tiny()


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory, synthetic_config: SyntheticConfig) -> Path:
    """A folder holding the tiny synthetic benchmark in the server layout (ROOT/nvs/..., ROOT/mono_flame_avatar/...).

    Shared by every test: treat it as read-only (copy it before changing anything)."""
    return generate(tmp_path_factory.mktemp("synthetic") / "benchmark", synthetic_config)


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the small synthetic NeRSemble v2 dataset (participants 17 and 18, three cameras, four
    frames at 110x160) in the official kit's layout. Read-only, like synthetic_root."""
    from nersemble_zarr.synthetic.dataset import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("synthetic_dataset") / "dataset")


@pytest.fixture(scope="session")
def dataset_store(synthetic_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic dataset converted into a store: EXP-1-head of participants 17 and 18 at full resolution,
    uncorrected (``dataset/{p}/EXP-1-head``), and EXP-1-head and EMO-1-shout+laugh of both at level 4,
    colour-corrected (``level_4/dataset/{p}/...``; EMO-1-shout+laugh has no full-resolution group). Read-only,
    like converted."""
    root = synthetic_dataset.parent  # the fetched folder ROOT: the dataset is ROOT/dataset
    store = tmp_path_factory.mktemp("dataset_store") / "dataset.zarr"
    convert(root, store, benchmarks=("dataset",), participants=(17, 18), sequences=("EXP-1-head",), workers=2)
    convert(root, store, benchmarks=("dataset",), participants=(17, 18),
            sequences=("EXP-1-head", "EMO-1-shout+laugh"), workers=2,
            dataset=DatasetOptions(level=4, colour_correct=True))
    return store


@pytest.fixture(scope="session")
def converted(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic benchmark converted into a store (both benchmarks, default codec and chunking).

    Shared by every test: treat it as read-only (copy it before changing anything)."""
    store = tmp_path_factory.mktemp("converted") / "bench.zarr"
    convert(synthetic_root, store, workers=2)
    return store


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FLAME folder holding the stand-in model (with chumpy objects) and landmark embeddings."""
    folder = tmp_path_factory.mktemp("flame_standin")
    write_standin_flame(folder, seed=0)
    return folder


@pytest.fixture(scope="session")
def plain_standin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same stand-in pickled without chumpy objects, which plain ``pickle.load`` (flame_model) reads."""
    folder = tmp_path_factory.mktemp("flame_standin_plain")
    write_standin_flame(folder, seed=0, chumpy_objects=False)
    return folder


@pytest.fixture(scope="session")
def cpu_model(standin_dir: Path) -> FlameModel:
    return FlameModel.load(standin_dir, device="cpu")


@pytest.fixture(scope="session")
def mesh_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the mono sequences of ``MESH_SEQUENCES`` (FLAME tracking) and no meshes yet; read-only."""
    path = tmp_path_factory.mktemp("mesh-input") / "tracking.zarr"
    prepare_store(path)
    for index, ((participant, sequence), n_timesteps) in enumerate(MESH_SEQUENCES.items()):
        dataset = sequence_dataset(n_timesteps, seed=index)
        dataset.attrs[schema.CONVERTED_ATTR] = True  # as convert leaves it: readers skip half-converted sequences
        dataset.to_zarr(path, group=schema.sequence_group("mono_flame_avatar", participant, sequence),
                        zarr_format=3, consolidated=False)
    consolidate(path)
    return path


@pytest.fixture(scope="session")
def svfr_config() -> SyntheticConfig:
    """The tiny SVFR config: every image of participants 17 (20) and 215 (13), at 1/10 of the image size."""
    return SyntheticConfig.tiny_svfr()


@pytest.fixture(scope="session")
def svfr_root(tmp_path_factory: pytest.TempPathFactory, svfr_config: SyntheticConfig) -> Path:
    """A folder holding the tiny synthetic SVFR benchmark in the server layout (ROOT/svfr/017/...); read-only."""
    return generate(tmp_path_factory.mktemp("synthetic_svfr") / "benchmark", svfr_config)


@pytest.fixture(scope="session")
def svfr_store(svfr_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic SVFR benchmark converted into a store (groups svfr/17 and svfr/215); read-only."""
    store = tmp_path_factory.mktemp("svfr_store") / "svfr.zarr"
    convert(svfr_root, store, workers=2)
    return store
