"""`nersemble-zarr export-frames`: one sequence as image folders + transforms.json for avatar codebases."""

from __future__ import annotations

from pathlib import Path

import click

from .options import handle_errors, list_option, scheduler_option, workers_option


@click.command("export-frames")
@click.argument("store")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "format_", type=click.Choice(["vhap", "nerfstudio", "vhap-v2", "nerf"]), default="vhap",
              show_default=True,
              help="Output layout: vhap = VHAP's NeRF dataset (what GaussianAvatars trains on, FLAME converted into "
                   "its convention); nerfstudio = nerfstudio's transforms.json; vhap-v2 = VHAP's preprocessed "
                   "NeRSemble v2 input (OUT is its --data.root_folder) from a dataset group; nerf = deprecated "
                   "alias of vhap.")
@click.option("--participant", "-p", type=int, default=None,
              help="Participant id (needed when the store holds several sequences).")
@click.option("--sequence", "-s", default=None, help="Sequence name (needed when the participant has several).")
@click.option("--level", "-l", type=click.IntRange(min=1), default=1, show_default=True,
              help="Resolution level: 1 = full resolution, s = written by `nersemble-zarr downsample --levels s`.")
@click.option("--fps", type=click.IntRange(min=1), default=None,
              help="With --format vhap-v2: frames per second to resample the 73 fps frames to, as VHAP's "
                   "preprocessing does (default 25).")
@click.option("--stride", type=click.IntRange(min=1), default=1, show_default=True,
              help="Keep every N-th stored frame; files and timestep_index keep the original frame indices.")
@list_option("--serials", help="Camera serial(s): repeatable or comma-separated; default: every camera.")
@click.option("--background", type=click.Choice(["black", "white", "none"]), default="black", show_default=True,
              help="Composite images on black or white, or write RGBA PNGs (none).")
@click.option("--split", "split_source", type=click.Path(exists=True, path_type=Path), default=None,
              help="Validation split (JSON file or store, see `nersemble-zarr split`): its frames go to "
                   "transforms_val.json and transforms_test.json (vhap) or val/test_filenames (nerfstudio).")
@click.option("--flame-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder with flame2023.pkl (default: $NERSEMBLE_FLAME_DIR, else ~/.cache/FLAME); --format vhap "
                   "needs FLAME's root joint for a sequence with tracking.")
@click.option("--centre-principal-point", is_flag=True,
              help="Crop/pad each camera's frames by whole pixels so its principal point is within half a pixel of "
                   "the image centre (GaussianAvatars assumes it there); cx, cy are adjusted.")
@click.option("--render-target", is_flag=True,
              help="With --format vhap: export the views without images (the benchmark's hold-out views) for "
                   "GaussianAvatars' render.py --target_path, each pointing at a blank image.")
@scheduler_option
@workers_option
@handle_errors
def export_frames(store, out, format_, participant, sequence, level, fps, stride, serials, background, split_source,
                  flame_dir, centre_principal_point, render_target, scheduler, workers):
    """Export one sequence of STORE into OUT as PNG frames, masks, FLAME parameters and transforms*.json.

    Resumable: files already in OUT are kept. transform_matrix is OpenGL/NeRF camera-to-world; cy is h - cy
    in --format vhap, as VHAP writes it; see docs/conventions.md. --format vhap-v2 instead writes a dataset
    sequence as VHAP's tracking reads it (calibration files, JPEG frames, BACKGROUND; see docs/dataset.md).
    """
    from nersemble_zarr.export_frames import export_frames as run_export, resolve_format
    from nersemble_zarr.parallel import connect

    from .progress import progress_bar

    if format_ == "vhap-v2":
        others = {"--stride": stride != 1, "--serials": bool(serials), "--background": background != "black",
                  "--split": split_source is not None, "--flame-dir": flame_dir is not None,
                  "--centre-principal-point": centre_principal_point, "--render-target": render_target}
        _export_vhap_v2(store, out, participant, sequence, level, fps, [name for name, on in others.items() if on],
                        scheduler, workers)
        return
    if fps is not None:
        from nersemble_zarr.errors import ConfigError

        raise ConfigError("--fps applies to --format vhap-v2 only.")
    format_, note = resolve_format(format_)
    if note is not None:
        click.echo(f"Warning: {note}", err=True)
    with connect(scheduler) as client, progress_bar("export-frames", "chunk") as progress:
        summary = run_export(
            store, out, format=format_, participant=participant, sequence=sequence, level=level, stride=stride,
            serials=serials or None, background=background, validation=split_source, workers=workers,
            flame_dir=flame_dir, centre_principal_point=centre_principal_point, render_target=render_target,
            client=client,
            progress=progress,
        )
    counts = ", ".join(f"{name} {count}" for name, count in summary.transforms.items())
    click.echo(
        f"Exported {summary.group} into {out}: {summary.frames_written} frame(s) written, "
        f"{summary.frames_skipped} already there; frames listed: {counts}."
    )
    if summary.principal_point_residual is not None:
        residual = summary.principal_point_residual
        click.echo(f"Principal points moved to the image centre, largest residual {residual:.3f} px.")


def _export_vhap_v2(store, out, participant, sequence, level, fps, inapplicable, scheduler, workers):
    """export-frames --format vhap-v2: VHAP's preprocessed input, then what VHAP still has to do."""
    from nersemble_zarr.errors import ConfigError
    from nersemble_zarr.export_frames.vhap_v2 import DEFAULT_FPS, export_vhap_v2
    from nersemble_zarr.parallel import connect

    from .progress import progress_bar

    if inapplicable:
        raise ConfigError(f"{inapplicable[0]} does not apply to --format vhap-v2, which writes every camera and "
                          "frame as VHAP's preprocessing does.")
    with connect(scheduler) as client, progress_bar("export-frames", "camera") as progress:
        summary = export_vhap_v2(store, out, participant=participant, sequence=sequence, level=level,
                                 fps=DEFAULT_FPS if fps is None else fps, workers=workers, client=client,
                                 progress=progress)
    click.echo(f"Exported {summary.group} for VHAP into {out}: {summary.frames_written} frame(s) and "
               f"{summary.backgrounds_written} background(s) written, {summary.frames_skipped} frame(s) already there.")
    for note in summary.notes:
        click.echo(note)


@click.command("combine-vhap",
               short_help="Combine `export-frames --format vhap` exports of one participant, as VHAP does.")
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@click.argument("sources", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--test", "tests", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="An export whose frames go to transforms_test.json (repeatable); the SOURCES train.")
@handle_errors
def combine_vhap(target, sources, tests):
    """Combine `export-frames --format vhap` exports of one participant (SOURCES, beside TARGET) into TARGET,
    laid out as VHAP's combine_nerf_datasets.py does (GaussianAvatars trains on such unions)."""
    from nersemble_zarr.export_frames.union import combine_vhap_exports

    counts = combine_vhap_exports(list(sources), list(tests), target)
    click.echo(f"Combined {len(sources) + len(tests)} export(s) into {target}: "
               + ", ".join(f"{name} {count}" for name, count in counts.items()) + ".")
