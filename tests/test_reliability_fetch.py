"""Fault campaign: fetch through seeded random fault schedules of the loopback server, then rerun without faults.

Even seeds fetch an nvs tree (metadata.json, calibration, point clouds), odd seeds a v2 dataset tree (its two
CSVs, calibration, colour calibration, videos and background JPEGs) from the same server, so every kind of
body check meets every fault.

Every faulty run must end either with every file byte-identical to the source, or with a FetchIncomplete /
DownloadError whose message is one line naming a file, never the URL, and without control characters
(reason phrases echo the secret path with terminal escapes); then no file under a final name may differ
from the source (web pages, gzip bodies, bodies past the announced size or cut short without a length
never land), and every ``.part`` must be a prefix of its file. A rerun without faults must then complete,
downloading only the bytes that are still missing. Log records (urllib3's request lines included, at
DEBUG) and error messages are scanned for the URL's secret and for escape characters.

Fast setting (CI): 200 schedules over 6 nvs files (4 of 150-400 KiB) or 8 dataset files (4 of 150-400 KiB),
3 workers. Long setting (``NERSEMBLE_CAMPAIGN=long``): 1000 schedules, files of 1-6 MiB (8 point clouds), 4 workers.
"""

from __future__ import annotations

import collections
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from campaign import assert_secret_absent, campaign_size, long_campaign, report
from fault_schedules import (
    CAMPAIGN_RETRY, DATASET_FETCH_ARGS, FETCH_ARGS, FaultSchedule, SchedulePlayer, draw_schedule, write_dataset_tree,
    write_source_tree,
)
from nersemble_zarr.errors import DownloadError
from nersemble_zarr.fetch import FetchIncomplete, ProgressEvent, fetch
from nersemble_zarr.synthetic.server import serve

N_SCHEDULES = campaign_size(fast=200, long=1000)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
N_CLOUDS, SIZES, WORKERS = (8, (1 << 20, 6 << 20), 4) if long_campaign() else (4, (150 << 10, 400 << 10), 3)


@dataclass(frozen=True)
class Target:
    """What one schedule fetches: a source, its URL below the server's, its fetch arguments, the served paths."""

    source: str
    url_path: str
    arguments: dict
    paths: list[str]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, list[Target]]:
    root = tmp_path_factory.mktemp("fault-source")
    return root, [Target("nvs", "", FETCH_ARGS, write_source_tree(root, N_CLOUDS, SIZES)),
                  Target("dataset", "/dataset", DATASET_FETCH_ARGS, write_dataset_tree(root, SIZES))]


class LogText(logging.Handler):
    """Every log record's final text, as a user's -vv terminal would show it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def log_text():
    handler = LogText()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def check_local_files(out: Path, source: Path, paths: list[str]) -> tuple[int, int]:
    """Every final file equals its source and every .part is a proper prefix; returns (complete, parts)."""
    complete = parts = 0
    allowed = set(paths) | {f"{path}.part" for path in paths}
    for local in out.rglob("*"):
        if not local.is_file():
            continue
        relative = local.relative_to(out).as_posix()
        assert relative in allowed, f"unexpected file {relative}"
        original = (source / relative.removesuffix(".part")).read_bytes()
        content = local.read_bytes()
        if relative.endswith(".part"):
            parts += 1
            assert len(content) < len(original) and original.startswith(content), f"{relative} is no prefix"
        else:
            complete += 1
            assert content == original, f"{relative} is under its final name but differs from the source"
    return complete, parts


def missing_bytes(out: Path, source: Path, paths: list[str]) -> int:
    """Bytes a resuming rerun still has to download: all of absent files, the rest of .part files."""
    total = 0
    for path in paths:
        if not (out / path).is_file():
            part = out / f"{path}.part"
            total += (source / path).stat().st_size - (part.stat().st_size if part.is_file() else 0)
    return total


def run_schedule(server, schedule: FaultSchedule, target: Target,
                 out: Path) -> tuple[str, Exception | None, list[ProgressEvent]]:
    """Fetch under the schedule; ('complete' | 'clean error', the error, the progress events)."""
    events: list[ProgressEvent] = []
    with SchedulePlayer(server, schedule):
        try:
            fetch(out, target.source, url=server.url + target.url_path, workers=WORKERS, retry=CAMPAIGN_RETRY,
                  progress=events.append, **target.arguments)
        except (FetchIncomplete, DownloadError) as error:
            return "clean error", error, events
    return "complete", None, events


def test_fetch_survives_seeded_fault_schedules(source, tmp_path, log_text):
    source_root, targets = source
    outcomes, kinds, messages, sources = collections.Counter(), collections.Counter(), [], collections.Counter()
    started = time.perf_counter()
    with serve(source_root) as server:
        for seed in range(N_SCHEDULES):
            target = targets[seed % len(targets)]
            paths = target.paths
            largest = max((source_root / path).stat().st_size for path in paths)
            sources[target.source] += 1
            schedule = draw_schedule(seed, paths, largest)
            kinds.update(schedule.kinds())
            out = tmp_path / f"run-{seed}"
            outcome, error, events = run_schedule(server, schedule, target, out)
            outcomes[(outcome, schedule.recoverable)] += 1
            complete, parts = check_local_files(out, source_root, paths)
            if outcome == "complete":
                assert complete == len(paths) and parts == 0, seed
                planned = sum(e.nbytes for e in events if e.kind == "plan")
                if "no_length" not in schedule.kinds():  # a file of unknown size adds nothing to the plan
                    assert planned == sum(e.nbytes for e in events if e.kind == "bytes"), f"progress, seed {seed}"
            else:
                assert not schedule.recoverable, f"seed {seed}: a recoverable schedule failed: {error}"
                message = str(error)
                assert "\n" not in message and f"{target.source}/" in message, message
                assert not CONTROL.search(message), f"seed {seed}: control characters in {message!r}"
                messages.append(message)
            server.clear_log()
            still_missing = missing_bytes(out, source_root, paths)
            rerun = fetch(out, target.source, url=server.url + target.url_path, workers=WORKERS,
                          retry=CAMPAIGN_RETRY, **target.arguments)
            assert not rerun.failed and check_local_files(out, source_root, paths) == (len(paths), 0), seed
            assert rerun.bytes_downloaded == still_missing, f"seed {seed}: the rerun did not resume exactly"
            if outcome == "complete":
                assert {r.method for r in server.requests} == {"HEAD"}, seed
            shutil.rmtree(out)  # the long setting would otherwise keep tens of GB
        secret = server.token
    assert_secret_absent(secret, logs="\n".join(log_text.lines), errors="\n".join(messages))
    assert not any(CONTROL.search(line) for line in log_text.lines), "a log line carries control characters"
    assert any("<access URL>" in m for m in messages), "no error echoed the secret path (redacted)"
    assert any(secret not in line and "GET" in line for line in log_text.lines)  # request lines were logged
    report("fetch-faults", schedules=N_SCHEDULES, schedules_per_source=dict(sources),
           files_per_run={t.source: len(t.paths) for t in targets}, workers=WORKERS,
           largest_file_bytes=max((source_root / p).stat().st_size for t in targets for p in t.paths),
           seconds=round(time.perf_counter() - started, 1),
           recoverable_complete=outcomes[("complete", True)], hostile_complete=outcomes[("complete", False)],
           hostile_clean_error=outcomes[("clean error", False)], reruns_complete=N_SCHEDULES,
           corrupt_or_partial_final_files=0, fault_kinds=dict(sorted(kinds.items())))
    assert outcomes[("clean error", False)] > 0 and outcomes[("complete", False)] > 0
