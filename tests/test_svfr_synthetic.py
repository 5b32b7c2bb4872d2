"""The synthetic SVFR images: exact server paths, the catalogue's keys, deterministic and head-like content."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest

from nersemble_zarr import catalogue
from nersemble_zarr.errors import CatalogueError, ConfigError
from nersemble_zarr.synthetic import SyntheticConfig, expected_files, generate, render_svfr_image


def test_the_full_config_lists_all_391_images_at_the_server_paths() -> None:
    files = expected_files(SyntheticConfig.full())
    svfr = [f for f in files if f.startswith("svfr/")]
    assert len(svfr) == 391 and "svfr/017/EXP-4-lips_6_221501007/rgb.png" in svfr
    assert not any(f.startswith("svfr/") for f in expected_files(SyntheticConfig.tiny()))


def test_tiny_svfr_writes_33_pngs_identically_each_time(svfr_root, svfr_config, tmp_path) -> None:
    files = expected_files(svfr_config)
    assert len(files) == 33 and {f.split("/")[1] for f in files} == {"017", "215"}
    again = generate(tmp_path / "again", svfr_config)
    for relative in files:
        assert (again / relative).read_bytes() == (svfr_root / relative).read_bytes()


def test_images_show_a_head_over_a_backdrop_that_varies_with_the_camera(svfr_config) -> None:
    keys = catalogue.svfr_image_keys()[17]
    images = [render_svfr_image(svfr_config, 17, key) for key in keys[:4]]
    width, height = svfr_config.frame_size("svfr")
    for image in images:
        assert image.shape == (height, width, 3) and image.dtype == np.uint8
        assert image.min(axis=2).min() > 0  # no black background: a backdrop behind the head
        centre, corner = image[height // 3: 2 * height // 3, width // 3: 2 * width // 3], image[:5, :5]
        assert np.abs(centre.astype(int).mean(axis=(0, 1)) - corner.astype(int).mean(axis=(0, 1))).max() > 10
    assert all(not np.array_equal(images[0], other) for other in images[1:])


def test_bad_svfr_settings_are_refused(svfr_config) -> None:
    with pytest.raises(CatalogueError, match="Unknown participant 388"):
        SyntheticConfig(svfr_participants=(388,))
    with pytest.raises(ConfigError, match="svfr_keys_per_participant 0"):
        SyntheticConfig(svfr_keys_per_participant=0)
    with pytest.raises(CatalogueError, match="is not synthesised"):
        render_svfr_image(svfr_config, 60, catalogue.svfr_image_keys()[60][0])


def test_the_png_decodes_to_the_render(svfr_root, svfr_config) -> None:
    key = catalogue.svfr_image_keys()[215][5]
    data = (svfr_root / "svfr" / catalogue.svfr_image_path(215, key)).read_bytes()
    assert np.array_equal(imagecodecs.png_decode(data), render_svfr_image(svfr_config, 215, key))
