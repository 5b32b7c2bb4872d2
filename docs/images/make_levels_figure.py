"""Make docs/images/levels.png: one synthetic frame at levels 1, 2 and 4 with head surface points projected.

    python docs/images/make_levels_figure.py

Runs the real pipeline on a small synthetic benchmark (generate -> convert -> downsample 2,4), projects
visible points of the synthetic head surface with each level's intrinsics, and shows each level enlarged
(nearest neighbour) to the size of level 1, so every point should sit on the same spot of the face.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import imagecodecs
import numpy as np
import xarray as xr

from nersemble_zarr import schema
from nersemble_zarr.cameras import opencv_camera_to_world, project_opencv
from nersemble_zarr.convert import convert
from nersemble_zarr.levels import downsample
from nersemble_zarr.synthetic import SyntheticConfig, generate, model_to_world, tracking
from nersemble_zarr.synthetic.head import ellipsoid_normals, ellipsoid_points

SERIAL, KEY, LEVELS = "222200036", ("nvs", 388, "GLASSES"), (1, 2, 4)
OUTPUT = Path(__file__).with_name("levels.png")


def visible_points(config: SyntheticConfig, world_2_cam: np.ndarray) -> np.ndarray:
    params = tracking(config, *KEY)
    model = ellipsoid_points(150, np.random.default_rng(3))
    rotation = params["rotation_matrices"][0].astype(np.float64)
    world = model_to_world(model, rotation, params["translation"][0].astype(np.float64), params["scale"])
    towards = opencv_camera_to_world(world_2_cam)[:3, 3] - world
    towards /= np.linalg.norm(towards, axis=1, keepdims=True)
    return world[np.einsum("ij,ij->i", ellipsoid_normals(model) @ rotation.T, towards) > 0.3]


def panel(dataset: xr.Dataset, level: int, points: np.ndarray) -> np.ndarray:
    """The level's frame enlarged by ``level`` (nearest neighbour), points marked at their projections."""
    camera = dataset.sel(serial=SERIAL)
    image = np.repeat(np.repeat(camera.images.values[0], level, axis=0), level, axis=1)
    pixels, _ = project_opencv(points, camera.world_2_cam.values, camera.intrinsics.values)
    display = (pixels + 0.5) * level - 0.5  # level pixel centre -> the centre of its enlarged block
    for column, row in np.round(display).astype(int):
        image[max(row - 1, 0) : row + 2, column] = (0, 255, 0)
        image[row, max(column - 1, 0) : column + 2] = (0, 255, 0)
    return image


def main() -> None:
    config = SyntheticConfig(scale=0.25, n_frames=1, nvs_participants=(388,), nvs_serials=(SERIAL,),
                             mono_participants=(), n_points=100)
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "fetched", config)
        store = Path(tmp) / "store.zarr"
        convert(root, store, benchmarks=("nvs",))
        downsample(store, LEVELS[1:])
        tree = xr.open_datatree(store, engine="zarr")
        datasets = {level: tree[schema.level_group(level, *KEY)].to_dataset() for level in LEVELS}
        points = visible_points(config, datasets[1].world_2_cam.sel(serial=SERIAL).values)
        panels = [panel(datasets[level], level, points) for level in LEVELS]
    height = min(p.shape[0] for p in panels)
    width = min(p.shape[1] for p in panels)  # level 4 crops the bottom/right remainder
    gap = np.full((height, 6, 3), 255, dtype=np.uint8)
    tiles = [tile for p in panels for tile in (p[:height, :width], gap)][:-1]
    figure = np.concatenate(tiles, axis=1)
    OUTPUT.write_bytes(imagecodecs.png_encode(figure, level=9))
    print(f"wrote {OUTPUT} ({figure.shape[1]}x{figure.shape[0]}, {len(points)} points)")


if __name__ == "__main__":
    main()
