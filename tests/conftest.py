"""Fixtures shared by the whole test suite: one tiny synthetic benchmark generated per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from nersemble_zarr.synthetic import SyntheticConfig, generate


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
def svfr_config() -> SyntheticConfig:
    """The tiny SVFR config: every image of participants 17 (20) and 215 (13), at 1/10 of the image size."""
    return SyntheticConfig.tiny_svfr()


@pytest.fixture(scope="session")
def svfr_root(tmp_path_factory: pytest.TempPathFactory, svfr_config: SyntheticConfig) -> Path:
    """A folder holding the tiny synthetic SVFR benchmark in the server layout (ROOT/svfr/017/...); read-only."""
    return generate(tmp_path_factory.mktemp("synthetic_svfr") / "benchmark", svfr_config)


@pytest.fixture(scope="session")
def svfr_flame_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the stand-in FLAME model (NOT FLAME), for SVFR meshes from FLAME parameters."""
    from nersemble_zarr.flame import write_standin_flame

    folder = tmp_path_factory.mktemp("svfr_flame")
    write_standin_flame(folder)
    return folder
