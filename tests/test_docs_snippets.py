"""The documentation is executable: every fenced ``bash``/``python`` block of README.md and docs/*.md runs, in
order, against the tiny synthetic benchmark served on loopback, or says why it cannot.

A block is marked on the line before its fence with an HTML comment, which the rendered docs do not show:

* ``<!-- run -->``: run it as written;
* ``<!-- run: OLD => NEW ;; OLD2 => NEW2 -->``: run it with these replacements, which adapt it to the tiny
  synthetic benchmark (its frame size, its one participant per benchmark);
* ``<!-- skip: REASON -->``: not run (needs the real data, a GPU, a cluster, or is a syntax summary).

The server holds what ``nersemble-zarr synthetic OUT`` writes: the tiny video benchmarks and the SVFR images of
participants 17 and 215. The README runs first (its tour as printed; the marker only fills in the URL), in an
empty folder holding only what a reader brings (``predictions.zarr`` and SVFR meshes under ``PRED/`` from
``nersemble-zarr synthetic-predictions``, ``renders/``, the FLAME model under ``~/.cache/FLAME`` and
``~/models/FLAME``), with a dask ``LocalCluster`` of two worker processes standing for the docs' cluster at
``tcp://HOST:8786`` (``$SCHEDULER``); each docs page then runs in a copy of the folder the README left. Bash blocks run with ``bash -e`` (``nersemble-zarr`` on the PATH), Python blocks as
scripts (``__main__``); one test per snippet, in page order. The fetch commands read the server's URL from ``NERSEMBLE_BENCHMARK_URL``,
and the small synthetic v2 dataset's (``tests/conftest.py``'s ``synthetic_dataset``) from ``NERSEMBLE_DATA_URL``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from nersemble_zarr.synthetic.server import serve

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(bash|python)\s*$")
MARKER = re.compile(r"^<!-- (run|skip)(?::\s*(.*?))? -->$")
BLOCK_TIMEOUT_S = 300


@dataclass(frozen=True)
class Snippet:
    page: str
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    action: str  # "run" or "skip"
    detail: str  # replacements (run) or the reason (skip)

    def runnable_code(self) -> str:
        """The code with the marker's replacements applied; a replacement that matches nothing is an error."""
        code = self.code
        for rule in filter(None, (part.strip() for part in self.detail.split(";;"))) if self.action == "run" else ():
            old, arrow, new = rule.partition(" => ")
            assert arrow and old in code, f"{self.where}: replacement {rule!r} matches nothing"
            code = code.replace(old, new)
        return code

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def collect(page: Path) -> tuple[list[Snippet], list[str]]:
    """The marked snippets of a page, and the places of fenced bash/python blocks without a marker."""
    lines = page.read_text(encoding="utf-8").splitlines()
    snippets, unmarked = [], []
    name = page.relative_to(ROOT).as_posix()
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        previous = lines[index - 1].strip() if index else ""
        marker = MARKER.match(previous)
        if marker is None:
            unmarked.append(f"{name}:{index + 1}")
        else:
            snippets.append(Snippet(name, index + 1, fence.group(1), "\n".join(lines[index + 1:end]) + "\n",
                                    marker.group(1), marker.group(2) or ""))
        index = end + 1
    return snippets, unmarked


def test_every_snippet_is_marked_runnable_or_says_why_not():
    unmarked = [place for page in PAGES for place in collect(page)[1]]
    assert not unmarked, f"fenced blocks without <!-- run --> or <!-- skip: reason -->: {unmarked}"
    for page in PAGES:
        for snippet in collect(page)[0]:
            assert snippet.action == "run" or len(snippet.detail) > 10, f"{snippet.where}: give the reason"


# ---------------------------------------------------------------- running
@pytest.fixture(scope="session")
def docs_world(tmp_path_factory, synthetic_root, svfr_root, synthetic_dataset, standin_dir):
    """The environment of a reader: the synthetic benchmark that `nersemble-zarr synthetic OUT` writes (the tiny
    video benchmarks and the SVFR images of participants 17 and 215) behind a URL, a home with the FLAME model,
    and a working folder holding the predictions that `nersemble-zarr synthetic-predictions` writes."""
    from nersemble_zarr.synthetic import SyntheticConfig, expected_files

    base = tmp_path_factory.mktemp("docs")
    served = base / "server"
    for root in (synthetic_root, svfr_root):
        shutil.copytree(root, served, dirs_exist_ok=True)
    assert {p.relative_to(served).as_posix() for p in served.rglob("*") if p.is_file()} == \
        set(expected_files(SyntheticConfig.tour()))  # what `nersemble-zarr synthetic OUT` serves
    shutil.copytree(synthetic_dataset, served / "dataset")  # the small synthetic v2 dataset, at NERSEMBLE_DATA_URL
    home = base / "home"
    for folder in (home / ".cache" / "FLAME", home / "models" / "FLAME"):
        shutil.copytree(standin_dir, folder)
    reader = base / "reader"
    reader.mkdir()
    subprocess.run([sys.executable, "-m", "nersemble_zarr.cli", "synthetic-predictions", "--flame-dir",
                    str(standin_dir)], cwd=reader, check=True, capture_output=True, timeout=BLOCK_TIMEOUT_S)
    write_renders(reader)
    from distributed import LocalCluster

    with serve(served) as server, LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) \
            as cluster:
        env = {
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "NERSEMBLE_BENCHMARK_URL": server.url,
            "NERSEMBLE_DATA_URL": f"{server.url}/dataset",
            "NERSEMBLE_FLAME_DIR": str(home / ".cache" / "FLAME"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),  # `python -m benchmarks...`, as from the repository root
            "MPLBACKEND": "Agg",
            "SCHEDULER": cluster.scheduler_address,  # stands for the docs' tcp://HOST:8786
        }
        yield base, reader, env


def write_renders(folder: Path) -> None:
    """``renders/{participant:03d}/{sequence}/cam_{serial}/{frame:05d}.png``, the image-folder predictions the
    docs call ``renders/``: the NVS hold-out cameras of ``predictions.zarr``."""
    import xarray as xr

    from nersemble_zarr import catalogue
    from nersemble_zarr.export_frames.pixels import write_png

    tree = xr.open_datatree(folder / "predictions.zarr", engine="zarr")
    for participant, sequence in catalogue.submission_sequences("nvs"):
        try:
            images = tree[f"nvs/{participant}/{sequence}"].dataset["images"]
        except KeyError:  # a participant the synthetic benchmark does not have
            continue
        for serial in catalogue.NVS_HOLD_OUT_SERIALS:
            target = folder / "renders" / f"{participant:03d}" / sequence / f"cam_{serial}"
            target.mkdir(parents=True)
            for index, frame in enumerate(images.sel(serial=serial).values):
                write_png(target / f"{index:05d}.png", frame)


def run_snippet(snippet: Snippet, folder: Path, env: dict[str, str]) -> None:
    """Run one snippet in ``folder``; fail with its output if it exits non-zero."""
    code = snippet.runnable_code()
    if snippet.language == "bash":
        command = ["bash", "-e", "-o", "pipefail", "-c", code]
    else:
        script = folder / f"_snippet_{snippet.line}.py"
        script.write_text(code, encoding="utf-8")
        command = [sys.executable, script.name]
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    assert result.returncode == 0, (
        f"{snippet.where} ({snippet.language}) failed with exit code {result.returncode}:\n{code}\n"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )


class Reader:
    """The reader's folders, one per page, and which snippets have run in them. README snippets run in the
    reader's folder; each docs page starts from a copy of it once every README snippet has run."""

    def __init__(self, base: Path, reader: Path, env: dict[str, str]) -> None:
        self.base, self.env = base, env
        self.tour = base / "tour"
        shutil.copytree(reader, self.tour)
        self.folders: dict[str, Path] = {"README.md": self.tour}
        self.done: set[str] = set()

    def run(self, snippet: Snippet) -> None:
        run_snippet(snippet, self.folder(snippet.page), self.env)
        self.done.add(snippet.where)

    def folder(self, page: str) -> Path:
        if page not in self.folders:
            for earlier in SNIPPETS:  # the docs assume the README tour was followed
                if earlier.page == "README.md" and earlier.action == "run" and earlier.where not in self.done:
                    self.run(earlier)
            folder = self.base / page.replace("/", "_")
            shutil.copytree(self.tour, folder, symlinks=True)
            self.folders[page] = folder
        return self.folders[page]


SNIPPETS = [snippet for page in PAGES for snippet in collect(page)[0]]


@pytest.fixture(scope="session")
def reader(docs_world) -> Reader:
    return Reader(*docs_world)


@pytest.mark.timeout(BLOCK_TIMEOUT_S * 3)
@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda snippet: snippet.where)
def test_snippet_runs_on_the_synthetic_benchmark(snippet, reader):
    if snippet.action == "skip":
        pytest.skip(snippet.detail)
    reader.run(snippet)


def test_the_readme_tour_runs_as_printed():
    """The tour's marker fills in the access URL and nothing else (issue 23)."""
    tour = next(s for s in SNIPPETS if s.page == "README.md" and "nersemble-zarr fetch ROOT nvs" in s.code)
    assert tour.action == "run"
    assert tour.detail.strip() == 'export NERSEMBLE_BENCHMARK_URL="..." => export NERSEMBLE_BENCHMARK_URL'
    assert "evaluate predictions.zarr" in tour.code and "fetch ROOT svfr" in tour.code and "PRED svfr.zip" in tour.code


def test_the_readme_tour_left_what_it_promises(reader):
    import json
    import zipfile

    tour = reader.folder("docs/index.md").parent / "tour"  # every README snippet has run
    assert (tour / "ROOT" / "nvs" / "metadata.json").is_file() and (tour / "nersemble.zarr" / "zarr.json").is_file()
    assert (tour / "submission.zip").is_file() and (tour / "cameras.png").is_file()
    assert json.loads((tour / "scores.json").read_text())  # evaluate scored the held-out train camera
    assert len(list((tour / "ROOT" / "svfr" / "017").glob("*/rgb.png"))) == 20
    with zipfile.ZipFile(tour / "svfr.zip") as archive:
        assert sum(name.endswith(".ply") for name in archive.namelist()) == 2 * 33  # posed and neutral
