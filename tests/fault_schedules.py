"""The fetch campaign's pieces: small served trees (nvs, and the v2 dataset), seeded random fault schedules for
the loopback server, and a player that applies a schedule's phases in time.

A schedule is one to three phases, each a ``Faults`` setting of the server held for a while (the last
until the run ends): dropped connections at random byte offsets, 5xx/408/429 bursts (with Retry-After),
random error rates, Range ignored, bodies cut short, throttled bodies, slow answers, reason phrases that
echo the request path (the secret) with terminal escapes, and answers without Content-Length. A
*recoverable* schedule stays within the client's retry budget (per file and phase at most one error answer
and one dropped connection, at most two phases), so the fetch must succeed; a *hostile* one may exceed it
(persistent short bodies, every GET dropped, high error rates, answers slower than the read timeout) or
answer with something that is not the file (a web page with 200, a gzip-encoded body, a body past the
announced size, a redirect to an unusable host name), so the fetch may end in a clear error instead.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass
from pathlib import Path

from nersemble_zarr import catalogue
from nersemble_zarr.fetch import RetryPolicy
from nersemble_zarr.inputs.dataset_index import PARTICIPANTS_CSV, SEQUENCES_CSV
from nersemble_zarr.sources.dataset import background_path, calibration_path, colour_calibration_path, video_path
from nersemble_zarr.synthetic.filler import mp4_around, pcd_around
from nersemble_zarr.synthetic.server import BenchmarkServer, Faults

# What the campaign's client uses: enough attempts for any recoverable schedule, waits of milliseconds.
CAMPAIGN_RETRY = RetryPolicy(attempts=6, backoff_s=0.002, max_backoff_s=0.02, connect_timeout_s=2.0,
                             read_timeout_s=0.25)
ERROR_STATUSES = (500, 502, 503, 504, 429, 408)
HOSTILE_REASON = ": {path} \x1b]0;owned\x07\x1b[2J\x1b[32mAll files verified OK\x1b[0m"
BAD_REDIRECT = "http://" + "x" * 64 + ".invalid{path}"  # a host label longer than 63 characters
# What the campaign fetches from the trees below: nvs's calibration and every point cloud frame; all of the
# dataset's participant 17 (two cameras).
FETCH_ARGS = {"participants": [388], "assets": ["calibration", "pointclouds"], "pointcloud_frames": "all"}
DATASET_SERIALS = ("222200037", "222200038")
DATASET_FETCH_ARGS = {"participants": [17], "cameras": DATASET_SERIALS}


def write_source_tree(root: Path, n_clouds: int, size_range: tuple[int, int], seed: int = 0) -> list[str]:
    """An NVS tree for participant 388 (metadata.json, calibration, ``n_clouds`` point cloud files of random,
    incompressible points) under ``root/nvs``; returns the served paths relative to ``root``."""
    rng = random.Random(seed)
    timesteps = [3 * index for index in range(n_clouds)]
    files = {
        catalogue.METADATA_FILE: json.dumps(
            {"sequences": {"388": {"sequence_name": "GLASSES", "timesteps": timesteps}}}).encode(),
        catalogue.calibration_path(388): json.dumps({"world_2_cam": {}, "intrinsics": {}}).encode(),
    }
    for timestep in timesteps:
        files[catalogue.pointcloud_path(388, "GLASSES", timestep)] = pcd_around(rng.randbytes(rng.randint(*size_range)))
    for relative, content in files.items():
        target = root / "nvs" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return [f"nvs/{relative}" for relative in files]


def write_dataset_tree(root: Path, size_range: tuple[int, int], seed: int = 0) -> list[str]:
    """A NeRSemble v2 dataset tree for participant 17 (both CSVs, calibration, colour calibration, one sequence
    filmed by two cameras as mp4-shaped files of random bytes, and their background JPEGs of noise) under
    ``root/dataset``; returns the served paths relative to ``root``."""
    import imagecodecs
    import numpy as np

    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    files = {
        PARTICIPANTS_CSV: b"ID\n17\n",
        SEQUENCES_CSV: b"ID,wears_glasses,BACKGROUND,EXP-1-head,EMO-1-shout+laugh\n17,,x,m,\n",
        calibration_path(17): json.dumps({"world_2_cam": {s: np.eye(4).tolist() for s in DATASET_SERIALS},
                                          "intrinsics": np.eye(3).tolist()}).encode(),
        colour_calibration_path(17): json.dumps({s: np.eye(3).tolist() for s in DATASET_SERIALS}).encode(),
    }
    for serial in DATASET_SERIALS:
        files[video_path(17, "EXP-1-head", serial)] = mp4_around(rng.randbytes(rng.randint(*size_range)))
        side = int((rng.randint(*size_range) / 0.9) ** 0.5)  # noise JPEGs take about 0.9 bytes per pixel
        picture = noise.integers(0, 256, (side, side, 3), dtype=np.uint8)
        files[background_path(17, serial)] = imagecodecs.jpeg8_encode(picture, level=90)
    for relative, content in files.items():
        target = root / "dataset" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return [f"dataset/{relative}" for relative in files]


@dataclass(frozen=True)
class Phase:
    """Server faults from ``start_s`` seconds after the run starts (until the next phase)."""

    start_s: float
    faults: Faults


@dataclass(frozen=True)
class FaultSchedule:
    """A seeded schedule: its phases, and whether the client's retries must be able to get through it."""

    seed: int
    recoverable: bool
    phases: tuple[Phase, ...]

    def kinds(self) -> set[str]:
        """Names of the fault kinds this schedule uses (for the campaign's figures)."""
        found = set()
        for phase in self.phases:
            faults = phase.faults
            found |= {name for name, used in (
                ("drop", faults.drop_after_bytes is not None), ("error_burst", faults.error_requests > 0),
                ("error_rate", faults.error_rate > 0), ("range_ignored", faults.ignore_range),
                ("short_body", faults.short_body_bytes > 0), ("slow_body", faults.bytes_per_second is not None),
                ("slow_answer", faults.delay_s > 0),
                ("timeout", faults.delay_s > CAMPAIGN_RETRY.read_timeout_s),
                ("reason_phrase", bool(faults.reason_suffix)), ("no_length", faults.no_content_length),
                ("web_page", faults.web_page), ("gzip", faults.content_encoding is not None),
                ("overlong", faults.overlong_bytes > 0), ("bad_redirect", faults.redirect_to is not None)) if used}
        return found


def draw_schedule(seed: int, paths: list[str], largest_file: int) -> FaultSchedule:
    """A random schedule over the served ``paths`` (relative to the server root) from ``seed``."""
    rng = random.Random(seed)
    recoverable = rng.random() < 0.6
    n_phases = rng.randint(1, 2 if recoverable else 3)
    phases, start = [], 0.0
    for index in range(n_phases):
        last = index == n_phases - 1
        phases.append(Phase(start, _draw_faults(rng, recoverable, last, paths, largest_file, seed)))
        start += rng.uniform(0.02, 0.3)
    return FaultSchedule(seed, recoverable, tuple(phases))


def _draw_faults(
    rng: random.Random, recoverable: bool, last: bool, paths: list[str], largest_file: int, seed: int
) -> Faults:
    """One phase's faults. Answers slower than the read timeout come only in a phase that ends (a few
    timeouts per file, not one per attempt until the client gives up: that would only cost time)."""
    some_paths = tuple(rng.sample(paths, rng.randint(1, len(paths)))) if rng.random() < 0.4 else ()
    drop = rng.random() < 0.6
    errors = rng.random() < 0.5
    timeout = not recoverable and not last and rng.random() < 0.3
    hostile_answer = None if recoverable or rng.random() < 0.6 else rng.choice(
        ("web_page", "gzip", "overlong", "bad_redirect"))
    return Faults(
        paths=some_paths,
        scope=rng.choice(("path", "global")),
        drop_after_bytes=rng.randrange(0, largest_file) if drop else None,
        drop_requests=1 if recoverable else rng.choice((None, 1, 2, 4, 8)),
        error_status=rng.choice(ERROR_STATUSES),
        error_requests=(1 if recoverable else rng.randint(1, 8)) if errors else 0,
        error_methods=rng.choice((("HEAD", "GET"), ("GET",), ("HEAD",))),
        retry_after=rng.choice((None, 0.01, 0.05)),
        error_rate=0.0 if recoverable or rng.random() < 0.5 else rng.uniform(0.05, 0.5),
        seed=seed,
        ignore_range=rng.random() < 0.3,
        short_body_bytes=0 if recoverable or rng.random() < 0.7 else rng.randint(1, 4096),
        bytes_per_second=rng.uniform(20, 200) * largest_file if rng.random() < 0.3 else None,
        delay_s=0.3 if timeout else (rng.uniform(0.001, 0.03) if rng.random() < 0.3 else 0.0),
        reason_suffix=HOSTILE_REASON if rng.random() < 0.3 else "",
        no_content_length=rng.random() < 0.2,
        web_page=hostile_answer == "web_page",
        web_page_type=rng.choice(("text/html", "application/octet-stream")),
        content_encoding="gzip" if hostile_answer == "gzip" else None,
        overlong_bytes=rng.randint(1, largest_file) if hostile_answer == "overlong" else 0,
        redirect_to=BAD_REDIRECT if hostile_answer == "bad_redirect" else None,
    )


class SchedulePlayer:
    """Applies a schedule's phases to a running server; ``with SchedulePlayer(server, schedule):``."""

    def __init__(self, server: BenchmarkServer, schedule: FaultSchedule) -> None:
        self.server = server
        self.schedule = schedule
        self._timers = [threading.Timer(phase.start_s, self._apply, (phase.faults,)) for phase in schedule.phases[1:]]
        self._stopped = threading.Event()

    def _apply(self, faults: Faults) -> None:
        if not self._stopped.is_set():
            self.server.faults = faults

    def __enter__(self) -> "SchedulePlayer":
        self.server.faults = self.schedule.phases[0].faults
        for timer in self._timers:
            timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopped.set()
        for timer in self._timers:
            timer.cancel()
            timer.join()
        self.server.faults = Faults()
