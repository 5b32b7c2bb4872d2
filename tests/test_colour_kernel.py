"""The CPU colour correction kernel (``nersemble_zarr.colour_kernel``) against the official ``correct_color`` on
random matrices and awkward frames, its threads (counts, dask tasks, a forked child) and its on-disk cache."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import dask
import numpy as np
import pytest
from nersemble_data.util.color_correction import correct_color

import nersemble_zarr
from nersemble_zarr import colour_kernel
from nersemble_zarr.colour import correct_colour
from nersemble_zarr.errors import InputDataError
from nersemble_zarr.synthetic.colour import near_identity_matrix

PACKAGE = Path(nersemble_zarr.__file__).parent


def random_matrix(terms: int, rng: np.random.Generator) -> np.ndarray:
    """Identity on R, G, B plus every other term's weight drawn at random: far from a colour checker fit, so
    every monomial moves the result and many values clip."""
    matrix = rng.normal(0, 0.3, (3, terms))
    matrix[:, :3] += np.eye(3)
    return matrix


def awkward_frames(rng: np.random.Generator) -> list[np.ndarray]:
    """Frames of odd sizes and layouts: 1 x 1, odd sides, a strided and flipped view, Fortran order, a batch."""
    big = rng.integers(0, 256, (61, 97, 3), dtype=np.uint8)
    return [rng.integers(0, 256, (1, 1, 3), dtype=np.uint8), rng.integers(0, 256, (7, 13, 3), dtype=np.uint8),
            big[1::3, ::-2], np.asfortranarray(big), rng.integers(0, 256, (3, 5, 11, 3), dtype=np.uint8)]


@pytest.mark.parametrize("terms", [3, 4, 5, 10, 16, 22, 35])
def test_random_matrices_on_awkward_frames_equal_the_official(terms: int) -> None:
    rng = np.random.default_rng(terms)
    matrix = random_matrix(terms, rng)
    for frames in awkward_frames(rng):
        official = correct_color(frames, matrix)  # per pixel: a batch or a view is as good as a frame to it
        ours = correct_colour(frames, matrix)
        assert ours.shape == frames.shape and ours.dtype == np.uint8
        assert np.abs(ours.astype(np.int16) - official).max() <= 1
        values = correct_colour(frames, matrix, as_float=True)
        np.testing.assert_allclose(values, correct_color(frames / 255.0, matrix), rtol=0, atol=1e-5)


def test_the_thread_count_never_changes_the_result_and_a_bad_one_is_refused() -> None:
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, (2, 211, 317, 3), dtype=np.uint8)  # enough pixels for several blocks of rows
    matrix = random_matrix(19, rng)
    one = correct_colour(frames, matrix, threads=1)
    assert np.abs(one.astype(np.int16) - correct_color(frames, matrix)).max() <= 1
    for threads in (2, 3, 16):
        np.testing.assert_array_equal(correct_colour(frames, matrix, threads=threads), one)
    for threads in (0, -1, 1.5, True, "2"):
        with pytest.raises(InputDataError, match=f"The thread count {threads!r} is invalid") as caught:
            correct_colour(frames, matrix, threads=threads)
        assert "\n" not in str(caught.value)


def test_one_thread_in_a_worker_thread_and_every_cpu_on_the_main_one() -> None:
    assert colour_kernel.default_threads() == len(os.sched_getaffinity(0))
    seen = []
    worker = threading.Thread(target=lambda: seen.append(colour_kernel.default_threads()))
    worker.start()
    worker.join()
    assert seen == [1]


def test_dask_tasks_correct_at_the_same_time() -> None:
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (120, 333, 3), dtype=np.uint8) for _ in range(6)]
    matrix = random_matrix(10, rng)
    tasks = [dask.delayed(correct_colour)(frame, matrix) for frame in frames]
    results = dask.compute(*tasks, scheduler="threads", num_workers=4)
    for frame, result in zip(frames, results):
        np.testing.assert_array_equal(result, correct_colour(frame, matrix, threads=2))


def _checksum_in_child(frame: np.ndarray, matrix: np.ndarray) -> int:
    return int(correct_colour(frame, matrix, threads=2).astype(np.int64).sum())


def test_a_forked_child_corrects_after_its_parent_did() -> None:
    """A torch DataLoader forks its workers from a process that may have corrected frames already: GNU OpenMP
    (numba's ``parallel=True`` here) aborts such a child, the kernel's own thread pool does not."""
    rng = np.random.default_rng(5)
    frame, matrix = rng.integers(0, 256, (400, 300, 3), dtype=np.uint8), near_identity_matrix(10)
    expected = int(correct_colour(frame, matrix, threads=2).astype(np.int64).sum())
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_checksum_in_child, (frame, matrix)).get(timeout=60) == expected


CHILD = """
import json
import numpy as np
from nersemble_zarr import colour, colour_kernel
frame = np.arange(300 * 257 * 3, dtype=np.int64).reshape(300, 257, 3).astype(np.uint8)
corrected = colour.correct_colour(frame, np.eye(3) * 0.9)
print(json.dumps({"module": colour.__file__, "sum": int(corrected.astype(np.int64).sum()),
                  "hits": sum(colour_kernel.correct_levels.stats.cache_hits.values())}))
"""


def _run_child(package_parent: Path, cache_home: Path, home: Path) -> dict:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("NUMBA_CACHE")}
    environment.update(PYTHONPATH=str(package_parent), XDG_CACHE_HOME=str(cache_home), HOME=str(home))
    done = subprocess.run([sys.executable, "-c", CHILD], env=environment, capture_output=True, text=True,
                          timeout=300, cwd=home)  # not the source tree: it would come first on the path
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_compiled_kernel_is_cached_outside_a_read_only_package_or_not_at_all(tmp_path: Path) -> None:
    """Where the package's ``__pycache__`` cannot be written (here a file in its place), numba caches in its user
    cache folder (``$XDG_CACHE_HOME/numba``); where that cannot be written either, it compiles in each process."""
    copy = tmp_path / "site" / "nersemble_zarr"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "__pycache__").write_text("not a folder")
    cache_home, home = tmp_path / "cache", tmp_path / "home"
    home.mkdir()
    first = _run_child(copy.parent, cache_home, home)
    assert first["module"] == str(copy / "colour.py") and first["hits"] == 0
    cached = sorted(path.name for path in (cache_home / "numba").rglob("colour_kernel.*"))
    assert any(name.endswith(".nbi") for name in cached) and any(name.endswith(".nbc") for name in cached)
    second = _run_child(copy.parent, cache_home, home)
    assert second["hits"] >= 1 and second["sum"] == first["sum"]
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, so no folder can be made under it")
    uncached = _run_child(copy.parent, blocked / "cache", home)
    assert uncached["sum"] == first["sum"] and uncached["hits"] == 0
    assert not any(home.iterdir())  # nothing was written into the home folder


def test_importing_the_colour_module_imports_neither_numba_nor_torch() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys, nersemble_zarr.colour; "
                           "print('numba' in sys.modules, 'torch' in sys.modules)"],
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("terms", [3, 5, 17, 35])
def test_the_torch_code_of_the_gpu_path_equals_the_official(terms: int) -> None:
    """``colour_gpu`` (run where ``device`` names a GPU) checked here on torch's CPU device, so that it is tested
    on machines without a GPU too."""
    import torch

    from nersemble_zarr.colour import _monomial_plan
    from nersemble_zarr.colour_gpu import DeviceCorrection

    rng = np.random.default_rng(terms)
    matrix = random_matrix(terms, rng)
    frame = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)[::-1]
    correction = DeviceCorrection(_monomial_plan(matrix), torch.device("cpu"))
    levels, values = np.empty(frame.shape, np.uint8), np.empty(frame.shape, np.float64)
    correction(frame, levels, as_float=False)
    correction(frame, values, as_float=True)
    assert np.abs(levels.astype(np.int16) - correct_color(frame, matrix)).max() <= 1
    np.testing.assert_allclose(values, correct_color(frame / 255.0, matrix), rtol=0, atol=1e-5)
