"""Body checks of the dataset's own file kinds: its CSVs and background JPEGs.

Real files (the synthetic dataset's, and JPEGs from PIL, OpenCV and libjpeg via imagecodecs) pass; a JPEG cut
short or with bytes after it, a web page named .csv or .jpg, a binary blob or a cut table named .csv are refused:
as a body, through fetch's downloader against the loopback server (one sentence naming the file, nothing under the
final name), and as a local file that is not taken as complete.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nersemble_zarr.fetch.content import WEB_PAGE_PROBLEM, read_head, signature_problem, size_ceiling, structure_problem
from nersemble_zarr.fetch.download import Downloader, FileDownloadError, RetryPolicy
from nersemble_zarr.synthetic.server import WEB_PAGE, Faults, serve

FAST = RetryPolicy(attempts=2, backoff_s=0.01, max_backoff_s=0.05, read_timeout_s=5.0)
SEQUENCES_CSV, PARTICIPANTS_CSV = "metadata_sequences.csv", "metadata_participants.csv"
BACKGROUND = "017/sequences/BACKGROUND/image_222200037.jpg"


def problem(path: Path, name: str | None = None) -> str | None:
    return structure_problem(path, name or path.name)


def jpegs() -> dict[str, bytes]:
    """The same picture from every JPEG writer at hand: PIL (baseline, progressive, with EXIF), OpenCV, libjpeg."""
    picture = np.random.default_rng(0).integers(0, 256, (96, 64, 3), dtype=np.uint8)
    written = {}
    for label, options in (("pil", {}), ("pil-progressive", {"progressive": True}),
                           ("pil-exif", {"exif": Image.Exif()})):
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, "JPEG", quality=90, **options)
        written[label] = buffer.getvalue()
    written["opencv"] = cv2.imencode(".jpg", picture)[1].tobytes()
    written["imagecodecs"] = imagecodecs.jpeg8_encode(picture, level=95)
    return written


# ---------------------------------------------------------------- the checks on files
def test_real_csvs_and_jpegs_pass(synthetic_dataset, tmp_path):
    for relative in (SEQUENCES_CSV, PARTICIPANTS_CSV, BACKGROUND):
        assert problem(synthetic_dataset / relative) is None, relative
    table = pd.read_csv(synthetic_dataset / SEQUENCES_CSV)  # what the official kit reads it with, written back
    table.to_csv(tmp_path / "pandas.csv", index=False)
    assert problem(tmp_path / "pandas.csv") is None
    for label, data in jpegs().items():
        (tmp_path / f"{label}.jpg").write_bytes(data)
        assert problem(tmp_path / f"{label}.jpg") is None, label
        assert problem(tmp_path / f"{label}.jpg", "image.JPEG") is None
    assert size_ceiling("a/b.jpg") == size_ceiling("c.jpeg") == 64 << 20 and size_ceiling("x.csv") == 16 << 20


def test_a_jpeg_cut_anywhere_or_with_bytes_after_it_is_refused(tmp_path):
    for label, data in jpegs().items():
        target = tmp_path / f"{label}.jpg"
        for cut in (3, 4, 20, 150, len(data) // 3, len(data) // 2, len(data) - 2, len(data) - 1):
            target.write_bytes(data[:cut])
            found = problem(target)
            assert found and "cut short" in found, (label, cut, found)
        target.write_bytes(data + bytes(16))  # a server padding the body
        assert "end-of-image" in problem(target)
        target.write_bytes(data[:2] + b"\xff\xd9")  # start and end of image, nothing between
        assert "ends before its image data" in problem(target)


def test_a_jpeg_cut_right_after_its_embedded_thumbnail_is_refused(tmp_path):
    """A camera's JPEG carries a thumbnail (a whole JPEG, ending FF D9) at the end of its APP1 segment: a file cut
    right after it ends with the end-of-image marker, yet no image data follows its segments."""
    main, thumbnail = jpegs()["pil"], jpegs()["opencv"]
    payload = b"Exif\0\0" + thumbnail
    data = main[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + main[2:]
    target = tmp_path / "camera.jpg"
    target.write_bytes(data)
    assert problem(target) is None and Image.open(target).size == (64, 96)
    cut = data[:data.index(thumbnail) + len(thumbnail)]
    assert cut.endswith(b"\xff\xd9")
    target.write_bytes(cut)
    assert problem(target) == f"it is cut short (a marker at byte {len(cut)} is incomplete)"


def test_web_pages_and_blobs_are_not_csvs_or_jpegs(synthetic_dataset, tmp_path):
    page = tmp_path / "page"
    page.write_bytes(WEB_PAGE)
    for name in (SEQUENCES_CSV, "image_222200037.jpg", "image.jpeg"):
        assert problem(page, name) == WEB_PAGE_PROBLEM
    table = (synthetic_dataset / SEQUENCES_CSV).read_bytes()
    cases = {
        "a binary blob": np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "NUL bytes": table.replace(b",x,", b",\0,", 1),
        "not UTF-8": table + "018,0,x,\xe9\n".encode("latin-1"),
        "another table": b"participant,sequence\n17,EXP-1-head\n",
        "a JPEG": jpegs()["pil"],
    }
    for label, data in cases.items():
        page.write_bytes(data)
        assert problem(page, SEQUENCES_CSV).startswith("it is not a CSV table"), label
    page.write_bytes(table)
    assert problem(page, "image.jpg") == "it is not a JPEG file"


def test_a_table_cut_mid_line_or_with_ragged_rows_is_refused(synthetic_dataset, tmp_path):
    table = (synthetic_dataset / SEQUENCES_CSV).read_bytes()
    target = tmp_path / SEQUENCES_CSV
    last_row = table.rstrip(b"\n").rsplit(b"\n", 1)[1]
    assert last_row.endswith(b",")  # participant 18's last cell is empty: a cut after the comma reads the same
    for cut in (len(table) - 1, len(table) - 3, len(table) // 2):
        target.write_bytes(table[:cut])
        assert problem(target) == "it is cut short (its last line has no line break)", cut
    target.write_bytes(table + b"19,0,x\n")
    assert problem(target) == "it is not a valid CSV table (its rows have 3 or 6 fields)"
    target.write_bytes(table + b'19,0,"x\n')
    assert "malformed quoted field" in problem(target)


def test_signature_checks_read_only_the_head(synthetic_dataset, tmp_path):
    """What fetch uses to take a local file as complete: a CSV whose first 1024 bytes end mid-character passes."""
    wide = tmp_path / "wide.csv"
    wide.write_bytes(("ID," + "é" * 700 + "\n17,x\n").encode())
    assert len(read_head(wide)) == 1024 and signature_problem("wide.csv", read_head(wide)) is None
    assert signature_problem(BACKGROUND, read_head(synthetic_dataset / BACKGROUND)) is None
    assert signature_problem("metadata.csv", b"\xef\xbb\xbfID\r\n17\r\n") is None  # a BOM and CRLF lines
    assert signature_problem("metadata.csv", b"IDENTITY,x\n") is not None


# ---------------------------------------------------------------- through fetch's downloader, on loopback
@pytest.fixture
def served(synthetic_dataset, tmp_path) -> Path:
    """A served folder holding a private copy of the synthetic dataset under ``dataset/``, as serve-synthetic has it."""
    root = tmp_path / "served"
    shutil.copytree(synthetic_dataset, root / "dataset")
    return root


@pytest.mark.parametrize("relative", [SEQUENCES_CSV, PARTICIPANTS_CSV, BACKGROUND])
def test_a_body_cut_short_without_length_never_lands(served, tmp_path, relative):
    size = (served / "dataset" / relative).stat().st_size
    cut = Faults(no_content_length=True, drop_after_bytes=size // 2, drop_requests=None, paths=(f"dataset/{relative}",))
    target = tmp_path / "fetched" / relative
    with serve(served, cut) as server, Downloader(server.url, "dataset", FAST) as downloader:
        with pytest.raises(FileDownloadError) as caught:
            downloader.download(relative, target)
        server.faults = Faults(no_content_length=True, drop_after_bytes=size // 2, paths=(f"dataset/{relative}",))
        downloader.download(relative, target)  # the first GET is cut, the retry completes
        message = str(caught.value)
        assert server.token not in message and "127.0.0.1" not in message
    assert message.startswith(f"Could not fetch dataset/{relative}: ") and "\n" not in message
    assert "cut short" in message and "gave up after 2 attempts" in message, message
    assert target.read_bytes() == (served / "dataset" / relative).read_bytes()


@pytest.mark.parametrize("relative", [SEQUENCES_CSV, BACKGROUND])
def test_a_web_page_named_csv_or_jpg_fails_at_once_in_one_sentence(served, tmp_path, relative):
    page = Faults(web_page=True, web_page_type="application/octet-stream", paths=(f"dataset/{relative}",))
    target = tmp_path / "fetched" / relative
    with serve(served, page) as server, Downloader(server.url, "dataset", FAST) as downloader:
        with pytest.raises(FileDownloadError, match="answered with a web page") as caught:
            downloader.download(relative, target)
        assert len([r for r in server.requests if r.method == "GET"]) == 1  # for good: not retried
    assert str(caught.value).startswith(f"Could not fetch dataset/{relative}: ")
    assert not target.exists() and not target.with_name(target.name + ".part").exists()


def test_a_binary_blob_named_csv_is_refused_and_keeps_nothing(served, tmp_path):
    (served / "dataset" / SEQUENCES_CSV).write_bytes(np.random.default_rng(2).bytes(5000))
    target = tmp_path / "fetched" / SEQUENCES_CSV
    with serve(served) as server, Downloader(server.url, "dataset", FAST) as downloader:
        with pytest.raises(FileDownloadError, match=f"Could not fetch dataset/{SEQUENCES_CSV}: .*it is not a CSV "
                                                    "table"):
            downloader.download(SEQUENCES_CSV, target)
    assert not target.exists() and not target.with_name(target.name + ".part").exists()
