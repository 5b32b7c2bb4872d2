"""The progress protocol: plain callables get counts only; set_total and describe reach callbacks that have them."""

from __future__ import annotations

import threading

import pytest

from helpers import ProgressRecorder
from nersemble_zarr.parallel import run_tasks
from nersemble_zarr.progress import LockedProgress, Progress, advance, describe, set_total


def test_a_plain_callable_is_a_progress_and_ignores_totals_and_descriptions():
    seen: list[int] = []
    assert isinstance(seen.append, Progress)
    set_total(seen.append, 10)
    describe(seen.append, "nvs/388/GLASSES")
    advance(seen.append, 3)
    advance(None, 3)  # no callback: nothing to do
    assert seen == [3]


def test_totals_and_descriptions_reach_a_callback_that_takes_them():
    recorder = ProgressRecorder()
    set_total(recorder, 7)
    describe(recorder, "mono_flame_avatar/393/FREE")
    advance(recorder, 2)
    assert (recorder.totals, recorder.texts, recorder.counts) == ([7], ["mono_flame_avatar/393/FREE"], [2])


def test_locked_progress_counts_every_report_from_many_threads():
    recorder = ProgressRecorder()
    locked = LockedProgress(recorder)
    locked.set_total(8 * 1000)
    threads = [threading.Thread(target=lambda: [locked(1) for _ in range(1000)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert recorder.totals == [8000] and recorder.done == 8000


def test_run_tasks_reports_one_unit_per_finished_task():
    seen: list[int] = []
    assert run_tasks(lambda x: x * x, list(range(12)), workers=3, progress=seen.append) == [x * x for x in range(12)]
    assert seen == [1] * 12


def test_run_tasks_raises_a_failed_task_s_own_error_and_runs_no_more_tasks():
    started: list[int] = []

    def task(x: int) -> int:
        started.append(x)
        if x == 0:
            raise KeyError("task 0 failed")
        threading.Event().wait(0.2)
        return x

    with pytest.raises(KeyError, match="task 0 failed"):
        run_tasks(task, list(range(20)), workers=1)
    assert started[0] == 0 and len(started) < 5  # the one worker may have begun the next task meanwhile
