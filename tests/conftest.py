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
def converted_store(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic benchmark converted into a store (read-only: copy it before changing anything)."""
    from nersemble_zarr.convert import convert

    path = tmp_path_factory.mktemp("converted") / "store.zarr"
    convert(synthetic_root, path, workers=2)
    return path
