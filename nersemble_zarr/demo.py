"""The whole job on the built-in synthetic benchmark, served over HTTP on loopback.

generate -> serve -> fetch (all three benchmarks) -> convert -> FLAME meshes (stand-in model) ->
export a submission per benchmark (hidden ground truth of the hold-out cameras as "predictions"; for SVFR,
stand-in FLAME meshes of the parameters behind each image) -> validate.
Every step is the library call behind the matching command; rerunning skips what is already done.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import catalogue
from .outputs import check_output_folder

Report = Callable[[str], None]
SVFR_PARTICIPANTS = (17, 215)  # the demo's SVFR participants: all their 33 images


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo keeps each stage's output under its working folder."""

    work: Path

    @property
    def server_root(self) -> Path:
        return self.work / "server"

    @property
    def fetched(self) -> Path:
        return self.work / "fetched"

    @property
    def store(self) -> Path:
        return self.work / "nersemble.zarr"

    @property
    def flame_dir(self) -> Path:
        return self.work / "flame-standin-NOT-FLAME"

    def submission(self, benchmark: str) -> Path:
        return self.work / f"submission_{benchmark}.zip"


def run_demo(work: str | Path, *, size: str = "tiny", workers: int = 2, report: Report = print) -> DemoPaths:
    """Run every step on the synthetic benchmark under ``work`` and report one line per step."""
    return run_demo_with(work, demo_config(size), workers=workers, report=report)


def demo_config(size: str):
    """The synthetic benchmark of ``demo --size tiny|small``."""
    from .synthetic import SyntheticConfig

    return SyntheticConfig.tiny() if size == "tiny" else _small_config()


def run_demo_with(work: str | Path, config, *, workers: int = 2, report: Report = print) -> DemoPaths:
    """Run every step on the synthetic benchmark of ``config`` under ``work``, one reported line per step."""
    paths = DemoPaths(check_output_folder(work, "demo folder"))
    paths.work.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(config, svfr_participants=SVFR_PARTICIPANTS)
    _generate(paths, config, report)
    _fetch(paths, workers, report)
    _convert(paths, workers, report)
    _meshes(paths, report)
    for benchmark in catalogue.BENCHMARKS:
        _export_and_validate(paths, config, benchmark, workers, report)
    _export_and_validate_svfr(paths, config, report)
    return paths


def _small_config():
    """A larger demo: real resolution, every train camera (fetch asks for all of them), a few frames."""
    from .synthetic import SyntheticConfig

    return SyntheticConfig(
        scale=1.0, n_frames=12, nvs_participants=(388,), nvs_serials=catalogue.NVS_TRAIN_SERIALS,
        mono_participants=(393,), mono_train_sequences=("EXP-1-head",), mono_test_sequences=("FREE",),
        n_points=30_000,
    )


def _generate(paths: DemoPaths, config, report: Report) -> None:
    from .synthetic import generate

    done = paths.work / ".server-generated"
    if done.exists() and done.read_text() == repr(config):
        report(f"synthetic benchmark: already in {paths.server_root}")
        return
    generate(paths.server_root, config)
    done.write_text(repr(config))
    report(f"synthetic benchmark: written to {paths.server_root}")


def _fetch(paths: DemoPaths, workers: int, report: Report) -> None:
    from .fetch import fetch
    from .synthetic.server import serve

    with serve(paths.server_root) as server:
        report("server: serving the synthetic benchmark on 127.0.0.1 (access URL kept secret)")
        for benchmark in catalogue.BENCHMARKS:
            summary = fetch(paths.fetched, benchmark, url=server.url, workers=workers)
            report(f"fetch {benchmark}: {summary.line()}")
        summary = fetch(paths.fetched, catalogue.SVFR, url=server.url, participants=SVFR_PARTICIPANTS, workers=workers)
        report(f"fetch svfr: {summary.line()}")


def _convert(paths: DemoPaths, workers: int, report: Report) -> None:
    from .convert import convert

    summary = convert(paths.fetched, paths.store, workers=workers)
    report(
        f"convert: {len(summary.sequences)} sequences in {paths.store} "
        f"({summary.videos_written} videos written, {summary.videos_skipped} already there)"
    )


def _meshes(paths: DemoPaths, report: Report) -> None:
    from .flame.standin import write_standin_flame
    from .flame.write_all import plan_meshes, write_meshes

    if not (paths.flame_dir / "flame2023.pkl").exists():
        write_standin_flame(paths.flame_dir)
    plan = plan_meshes(paths.store, flame_dir=paths.flame_dir)
    written = write_meshes(plan)
    report(
        f"meshes: FLAME STAND-IN (random values with FLAME's shapes, not the licensed model) on {plan.model.device}: "
        f"{written} sequences meshed, {len(plan.targets) - written} already done"
    )


def ground_truth_predictions(config, benchmark: str) -> dict[tuple[int, str, str], "object"]:
    """The hidden ground truth of every video a submission needs, rendered by the synthetic benchmark."""
    import numpy as np

    from .synthetic import render_views

    predictions = {}
    for participant, sequence in catalogue.submission_sequences(benchmark):
        if participant not in config.participants_of(benchmark) or sequence not in config.sequences_of(benchmark, participant):
            continue
        for serial in catalogue.submission_serials(benchmark):
            frames = [rgb for rgb, _ in render_views(config, benchmark, participant, sequence, serial)]
            predictions[(participant, sequence, serial)] = np.stack(frames)
    return predictions


def _export_and_validate(paths: DemoPaths, config, benchmark: str, workers: int, report: Report) -> None:
    from .submission import export_submission, validate_submission

    output = paths.submission(benchmark)
    resolution = config.frame_size(benchmark)
    if not output.exists():
        predictions = ground_truth_predictions(config, benchmark)
        export_submission(
            predictions, output, benchmark, root=paths.fetched, resolution=resolution, partial=True, workers=workers
        )
    result = validate_submission(output, benchmark, root=paths.fetched, resolution=resolution, partial=True)
    result.raise_if_invalid()
    report(
        f"submission {benchmark}: {output} holds {len(result.valid_videos)} valid crf-14 H.264 videos "
        f"(partial: only the synthetic participants; frame size {resolution[0]}x{resolution[1]})"
    )


def _export_and_validate_svfr(paths: DemoPaths, config, report: Report) -> None:
    """Posed and neutral stand-in FLAME meshes of the demo's SVFR images (partial: 2 of 20 participants)."""
    from .submission import SvfrFlamePredictions, export_svfr_submission, validate_svfr_submission
    from .synthetic import svfr_flame_parameters

    output = paths.submission(catalogue.SVFR)
    if not output.exists():
        names = ("shape", "expression", "jaw", "neck", "eyes", "rotation", "translation", "scale")
        predictions = SvfrFlamePredictions({
            (p, *key): {name: svfr_flame_parameters(config, p, key)[name] for name in names}
            for p in config.svfr_participants for key in config.svfr_keys_of(p)
        })
        export_svfr_submission(predictions, output, partial=True, flame_dir=paths.flame_dir)
    result = validate_svfr_submission(output, partial=True)
    result.raise_if_invalid()
    report(
        f"submission svfr: {output} holds {len(result.valid_videos)} valid meshes, posed and neutral, of the "
        f"FLAME STAND-IN (partial: only the synthetic participants {', '.join(map(str, config.svfr_participants))})"
    )
