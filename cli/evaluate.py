"""``evaluate`` and ``split``: local scores of predictions on a validation split, before the rate-limited server."""

from __future__ import annotations

from pathlib import Path

import click

from nersemble_zarr.errors import ConfigError
from nersemble_zarr.outputs import claim_output_file

from .options import (
    CommaList, handle_errors, joined, list_option, overwrite_file_option, scheduler_option, workers_option,
)

BENCHMARKS = ("nvs", "mono_flame_avatar")  # the benchmarks with image predictions


def _timesteps(ctx: click.Context, param: click.Parameter, value) -> tuple[int, ...]:
    parts = joined(ctx, param, value)
    if not all(part.isdigit() for part in parts):
        raise click.BadParameter(f"{', '.join(parts)} is not a comma-separated list of frame indices, e.g. 0,30,60.")
    return tuple(int(part) for part in parts)


@click.command("evaluate", short_help="Score predictions against the store's ground truth: PSNR, SSIM, LPIPS, JOD.")
@click.argument("predictions", type=click.Path(exists=True, path_type=Path))
@click.option("--store", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Converted store holding the ground truth.")
@click.option("--benchmark", "-b", type=click.Choice(BENCHMARKS), required=True, help="Benchmark of the predictions.")
@click.option("--split", "split_source", type=click.Path(exists=True, path_type=Path),
              help="Validation split (JSON file or a store holding one): evaluate only its validation frames.")
@click.option("--every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Evaluate every N-th stored frame.")
@click.option("--timesteps", multiple=True, type=CommaList(), callback=_timesteps,
              help="Original frame indices to evaluate: repeatable or comma-separated; default: every stored frame.")
@list_option("--cameras", help="Camera serial(s) to evaluate: repeatable or comma-separated; default: every predicted "
                               "camera.")
@click.option("--no-lpips", is_flag=True, help="Skip LPIPS.")
@click.option("--no-jod", is_flag=True, help="Skip JOD (FovVideoVDP, the slowest metric).")
@click.option("--device", help="Torch device for the metrics, e.g. cpu or cuda; default: cuda when available.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the scores as JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Write per-frame scores as CSV.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG: per-frame PSNR per camera and the worst frames' error maps.")
@scheduler_option
@workers_option
@overwrite_file_option
@handle_errors
def evaluate(predictions, store, benchmark, split_source, every, timesteps, cameras, no_lpips, no_jod, device,
             json_path, csv_path, plot_path, scheduler, workers, overwrite):
    """Score PREDICTIONS (a store, a folder of images PRED/{participant:03d}/{sequence}/cam_{serial}/{frame:05d}.png
    or a submission zip) against the ground truth in --store: PSNR, SSIM, LPIPS (AlexNet) and JOD, full frame
    and masked. See docs/evaluation.md for every setting."""
    from nersemble_zarr.evaluation import evaluate as run_evaluation
    from nersemble_zarr.parallel import connect

    from .progress import progress_bar

    _claim_outputs({"--json": json_path, "--csv": csv_path, "--plot": plot_path}, overwrite,
                   inputs=(predictions, store, *([split_source] if split_source else [])))
    with connect(scheduler) as client, progress_bar("evaluate", "video") as progress:
        result = run_evaluation(
            predictions, store, benchmark, every=every, timesteps=timesteps or None, cameras=cameras or None,
            validation=split_source, lpips=not no_lpips, jod=not no_jod, device=device, workers=workers,
            client=client, progress=progress,
        )
    for reason in result.unavailable:
        click.echo(reason, err=True)
    click.echo(result.table())
    if json_path:
        result.write_json(json_path)
    if csv_path:
        result.write_csv(csv_path)
    if plot_path:
        from nersemble_zarr.evaluation.plot import plot_result

        plot_result(result, plot_path)


def _claim_outputs(outputs: dict[str, Path | None], overwrite: bool, inputs: tuple[Path, ...]) -> None:
    """Refuse, before any work, an output that breaks the rule of every file output or is given twice."""
    seen: dict[Path, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        claim_output_file(path, overwrite=overwrite, what=f"{option} output", inputs=inputs)
        if path.absolute() in seen:
            raise ConfigError(f"{seen[path.absolute()]} and {option} name the same file {path}; give each output "
                              "its own path.")
        seen[path.absolute()] = option


@click.command("split")
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--benchmark", "-b", type=click.Choice(BENCHMARKS), required=True, help="Benchmark of the split.")
@list_option("--cameras", help="Train camera serial(s) to hold out (NVS): repeatable or comma-separated.")
@list_option("--sequences", help="Train sequence(s) to hold out (mono_flame_avatar): repeatable or comma-separated.")
@click.option("--trailing-frames", type=click.IntRange(min=0), default=0, show_default=True,
              help="Hold out the last N stored frames of every sequence.")
@overwrite_file_option
@handle_errors
def split(target, benchmark, cameras, sequences, trailing_frames, overwrite):
    """Write a validation split into TARGET: a JSON file, or the root attributes of a converted store.
    FrameDataset, export-frames and evaluate then hold out the same frames."""
    from nersemble_zarr.evaluation import ValidationSplit, write_split

    chosen = ValidationSplit(benchmark, cameras, sequences, trailing_frames)
    write_split(chosen, target, overwrite=overwrite)
    click.echo(f"Wrote the {benchmark} validation split into {target}.")
