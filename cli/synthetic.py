"""``nersemble-zarr synthetic OUT``: write a synthetic benchmark in the real server's layout (and, on request, the
synthetic v2 dataset in the official kit's layout)."""

from __future__ import annotations

from pathlib import Path

import click

from .options import IdList, handle_errors, list_option, workers_option


size_option = click.option(
    "--size", type=click.Choice(["tiny", "tiny-svfr", "full"]), default="tiny", show_default=True,
    help="tiny: participants 388 (nvs) and 393 (mono), 6 frames, 1/10 resolution, and the SVFR images of "
         "participants 17 and 215 at 1/10 size (what the README tour fetches); tiny-svfr: only those SVFR images; "
         "full: the whole benchmark (SVFR included) at real size.",
)
seed_option = click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of every random choice."
)
dataset_option = click.option(
    "--dataset", is_flag=True,
    help="Also write the synthetic NeRSemble v2 dataset into OUT/dataset/, in the official nersemble-data kit's "
         "layout (CSVs, calibration, colour calibration, background JPEGs, 73 fps videos): participants 17 and 18, "
         "three sequences, three cameras, 4 frames of 110x160 (1/20 of 2200x3208).",
)
dataset_full_size_option = click.option(
    "--dataset-full-size", is_flag=True,
    help="The dataset's frames at the real 2200x3208 (implies --dataset; rendering takes seconds per frame).",
)
dataset_participants_option = list_option(
    "--dataset-participants", "dataset_participants", type=IdList(),
    help="The dataset's participants (implies --dataset): repeatable, comma-separated or a range (17-30); "
         "default: 17,18.",
)
dataset_frames_option = click.option(
    "--dataset-frames", type=click.IntRange(min=1), default=None,
    help="Frames of each dataset video (implies --dataset); default: 4.",
)


@click.command()
@click.argument("out", type=click.Path(path_type=Path))
@size_option
@seed_option
@dataset_option
@dataset_full_size_option
@dataset_participants_option
@dataset_frames_option
@workers_option
@handle_errors
def synthetic(out: Path, size: str, seed: int, dataset: bool, dataset_full_size: bool,
              dataset_participants: tuple[int, ...], dataset_frames: int | None, workers: int) -> None:
    """Write a synthetic NeRSemble benchmark (server layout) under OUT, and with --dataset the synthetic v2
    dataset under OUT/dataset."""
    from nersemble_zarr.outputs import check_output_folder
    from nersemble_zarr.synthetic import config_of_size, generate
    from nersemble_zarr.synthetic.dataset import generate_dataset
    from nersemble_zarr.synthetic.dataset_config import DATASET_FOLDER, SyntheticDatasetConfig

    from .progress import progress_bar

    config = config_of_size(size, seed)
    dataset_config = None
    if dataset or dataset_full_size or dataset_participants or dataset_frames:  # refused now, before any writing
        dataset_config = SyntheticDatasetConfig.chosen(seed, full_size=dataset_full_size,
                                                       participants=dataset_participants, n_frames=dataset_frames)
        check_output_folder(out / DATASET_FOLDER, "synthetic dataset folder")
    with progress_bar("synthetic", "file") as progress:
        generate(out, config, workers=workers, progress=progress)
    click.echo(f"Wrote the {size} synthetic benchmark to {out}")
    if dataset_config is not None:
        with progress_bar("synthetic dataset", "file") as progress:
            generate_dataset(out / DATASET_FOLDER, dataset_config, workers=workers, progress=progress)
        width, height = dataset_config.frame_size()
        click.echo(f"Wrote the synthetic dataset ({len(dataset_config.participants)} participants, "
                   f"{width}x{height}) to {out / DATASET_FOLDER}")
