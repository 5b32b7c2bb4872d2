"""The benchmark suite's plumbing, run cheaply: rows, the table, the page's markers, the shared options, and the
instruments of the read benchmark (the raw chunk reader and every read path return the stored frame).
No timing is asserted."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from benchmarks.options import parse_benchmark_args
from benchmarks.raw_chunks import RawChunkReader
from benchmarks.read_paths import GROUP, PARTICIPANT, READ_PATHS, SEQUENCE
from benchmarks.suite import END, MODULES, START, replace_table, write_table
from benchmarks.table import Row, append_rows, markdown_table, read_rows
from nersemble_zarr import catalogue, schema
from nersemble_zarr.convert import convert

ROOT = Path(__file__).resolve().parent.parent
ROWS = [
    Row("convert", "(a) random frame read, warm: zarr", "5.49 ms", "259.0 ms (OpenCV seek + read)", 47.1763, "raw 1.37 ms",
        "80 / 154 MiB"),
    Row("svfr", "export of 782 meshes", "2.45 s", "4.13 s (trimesh loop)", 1.6857, "", "433 / 433 MiB"),
]


def test_rows_appended_by_two_runs_read_back_in_order_into_one_table(tmp_path: Path) -> None:
    rows_file = tmp_path / "rows.jsonl"
    append_rows(rows_file, ROWS[:1])
    append_rows(rows_file, ROWS[1:])
    append_rows(None, ROWS)  # without --rows nothing is written anywhere
    assert read_rows(rows_file) == ROWS
    lines = markdown_table(read_rows(rows_file)).splitlines()
    assert lines[0].startswith("| benchmark | what | ours | baseline | ratio | limit |")
    assert lines[2] == ("| convert | (a) random frame read, warm: zarr | 5.49 ms | 259.0 ms (OpenCV seek + read) | 47.18 "
                        "| raw 1.37 ms | 80 / 154 MiB |")
    assert lines[3].startswith("| svfr | export of 782 meshes | 2.45 s | 4.13 s (trimesh loop) | 1.69 |")
    assert len(lines) == 4


def test_the_table_replaces_what_lies_between_the_markers_and_keeps_the_rest_byte_for_byte(tmp_path: Path) -> None:
    before = "# Performance\r\n\r\nWhat the table means: ratios > 1 are faster.  \n\u00e9t\u00e9 | pipes |\n"
    after = "\n\nMore text, trailing spaces   \n<!-- benchmark-table:end-ish -->\nno final newline"
    page = tmp_path / "performance.md"
    page.write_bytes(f"{before}{START}\nold heading\n\n| old | table |\n{END}{after}".encode())
    write_table(page, ROWS, "`python -m benchmarks.suite --quick` on 2026-12-02 00:00 UTC, 2 CPU cores")
    written = page.read_bytes().decode()
    assert written.startswith(f"{before}{START}\n`python -m benchmarks.suite --quick` on 2026-12-02")
    assert written.endswith(f"| 433 / 433 MiB |\n{END}{after}")
    assert "old" not in written.split(START)[1].split(END)[0]
    assert markdown_table(ROWS) in written
    assert not list(tmp_path.glob(".*part*"))  # written atomically: no temporary file left beside it


@pytest.mark.parametrize("text", [
    "# Performance\n\nno markers at all\n",
    f"{START}\nonly the start\n",
    f"only the end\n{END}\n",
    f"{END}\nend before start\n{START}\n",
    f"{START}\n{START}\ntwo starts\n{END}\n",
    f"inline {START} markers {END}\n",
])
def test_a_page_without_one_ordered_pair_of_marker_lines_is_refused_and_left_alone(tmp_path: Path, text: str) -> None:
    page = tmp_path / "performance.md"
    page.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="benchmark-table:start"):
        write_table(page, ROWS, "heading")
    assert page.read_text(encoding="utf-8") == text


def test_the_docs_page_has_the_markers() -> None:
    replace_table((ROOT / "docs" / "performance.md").read_text(encoding="utf-8"), "")


def test_quick_replaces_the_defaults_and_an_option_given_still_wins() -> None:
    def parse(*argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        parser.add_argument("--frames", type=int, default=300)
        parser.add_argument("--reads", type=int, default=60)
        return parse_benchmark_args(parser, {"frames": 100, "reads": 20}, list(argv))

    assert (parse().frames, parse().reads, parse().quick, parse().rows) == (300, 60, False, None)
    assert (parse("--quick").frames, parse("--quick").reads) == (100, 20)
    assert (parse("--quick", "--frames", "7").frames, parse("--frames", "7", "--quick").reads) == (7, 20)
    assert parse("--rows", "out.jsonl").rows == Path("out.jsonl")


@pytest.mark.parametrize("module", MODULES)
def test_every_benchmark_of_the_suite_takes_quick_and_rows(module: str) -> None:
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout and "--rows" in done.stdout


def test_a_phase_child_reports_its_own_peak_memory_not_its_parents() -> None:
    """A parent that once held 300 MiB starts a child as ``run_phase`` does (``subprocess``, vfork on Linux);
    the child's ``ru_maxrss`` would begin at the parent's 300 MiB, its VmHWM does not."""
    child = "from benchmarks.phases import report_phase; report_phase({'empty': lambda args: {}}, 'empty', None)"
    parent = ("import subprocess, sys; block = bytearray(300 << 20); block = None; "
              f"print(subprocess.run([sys.executable, '-c', {child!r}], check=True, stdout=subprocess.PIPE, "
              "text=True).stdout)")
    done = subprocess.run([sys.executable, "-c", parent], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 1 < json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mib"] < 150


@pytest.fixture(scope="module")
def lz4_store(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("lz4") / "lz4.zarr"
    convert(synthetic_root, store, benchmarks=("nvs",), codec="lz4", workers=1)
    return store


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_the_raw_chunk_reader_returns_what_zarr_reads(codec: str, converted: Path, lz4_store: Path) -> None:
    store = converted if codec == "zstd" else lz4_store
    for variable in (schema.IMAGES, schema.ALPHA):
        array = zarr.open_array(store, path=f"{GROUP}/{variable}", mode="r")
        reader = RawChunkReader(store / GROUP / variable)
        assert reader.sharded
        for serial_index, timestep in [(0, 0), (1, array.shape[1] - 1), (0, 2), (1, 2), (0, 0)]:
            frame = reader.read(serial_index, timestep)
            assert frame.dtype == np.uint8 and frame.shape == array.shape[2:]
            np.testing.assert_array_equal(frame, array[serial_index, timestep])
        reader.close()


def test_the_raw_chunk_reader_refuses_a_codec_it_cannot_decompress(synthetic_root: Path, tmp_path: Path) -> None:
    store = tmp_path / "jxl.zarr"
    convert(synthetic_root, store, benchmarks=("nvs",), codec="jpegxl-lossless", workers=1)
    with pytest.raises(ValueError, match="supports bytes"):
        RawChunkReader(store / GROUP / schema.IMAGES)


def test_every_read_path_returns_the_stored_frame(converted: Path, synthetic_root: Path) -> None:
    images = zarr.open_array(converted, path=f"{GROUP}/{schema.IMAGES}", mode="r")
    serials = [str(s) for s in zarr.open_array(converted, path=f"{GROUP}/{schema.SERIAL}", mode="r")[:]]
    flags = zarr.open_array(converted, path=f"{GROUP}/{schema.converted_flag(schema.IMAGES)}", mode="r")[:]
    stored = [serial for serial, done in zip(serials, flags) if done]
    videos = lambda serial: synthetic_root / "nvs" / catalogue.video_path(PARTICIPANT, SEQUENCE, serial)
    for name, (_, opener) in READ_PATHS.items():
        read = opener(converted, videos)
        for serial, position in [(stored[0], 0), (stored[-1], 4), (stored[0], 4)]:
            frame = read(serial, position)
            if frame.dtype != np.uint8:
                frame = np.rint(frame * 255).astype(np.uint8)
            expected = images[serials.index(serial), position]
            if name == "opencv":  # OpenCV decodes the mp4 itself: the same picture up to its colour conversion
                assert frame.shape == expected.shape
                assert np.abs(frame.astype(int) - expected).mean() < 3, name
            else:
                np.testing.assert_array_equal(frame, expected, err_msg=name)


def test_the_backend_floor_benchmark_reads_the_raw_frame_on_every_path_and_from_a_longer_copy(
        converted: Path, tmp_path: Path) -> None:
    import xarray as xr

    from benchmarks.backend_floor import PATHS, ROWS, long_copy, measure, rows, written_frames

    serials, timesteps = written_frames(converted)
    longer = long_copy(converted, tmp_path / "long.zarr", timesteps + 40)
    for store in (converted, longer):  # measure raises when a path reads another frame than the raw read
        times = measure(store, reads=2, timesteps=timesteps)
        assert list(times) == list(PATHS) and all(len(values) == 2 for values in times.values())
        table = rows(store.stem, times)
        assert [row.what.split(": ")[1].split(",")[0] for row in table] == list(ROWS)
        assert table[0].ours == f"{min(times['nersemble {}']):.2f} ms"
    images = xr.open_datatree(longer, engine="nersemble", chunks={})[GROUP].to_dataset().images
    assert images.shape[1] == timesteps + 40 and images.data.numblocks[1] == timesteps + 40
    original = zarr.open_array(converted, path=f"{GROUP}/{schema.IMAGES}", mode="r")
    assert original.shape[1] == timesteps  # the copy's metadata is its own: the store it links to is unchanged
    all_serials = zarr.open_array(converted, path=f"{GROUP}/{schema.SERIAL}", mode="r")[:]
    index = [str(serial) for serial in all_serials].index(serials[-1])
    np.testing.assert_array_equal(images.isel(serial=index, timestep=timesteps - 1).values,
                                  original[index, timesteps - 1])
