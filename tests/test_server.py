"""The loopback benchmark server: secret prefix, HEAD/GET/Range, every fault switch, request log, shutdown."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from nersemble_zarr.errors import ConfigError
from nersemble_zarr.synthetic.server import WEB_PAGE, Faults, RequestRecord, serve

SIZE = 100_000
REL = "nvs/388/sequences/GLASSES/images/cam_222200042.mp4"
OTHER = "nvs/388/calibration/camera_params.json"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served")
    for relative, size in ((REL, SIZE), (OTHER, 1000)):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(i % 251 for i in range(size)))
    return root


@pytest.fixture
def body(folder: Path) -> bytes:
    return (folder / REL).read_bytes()


def raw_get(server, relative: str, headers: str = "") -> tuple[bytes, bytes]:
    """(header block, body bytes read until the server closes) of one GET over a plain socket."""
    path = server.url.split(str(server.server_address[1]), 1)[1]
    with socket.create_connection(server.server_address, timeout=5) as connection:
        connection.sendall(f"GET {path}/{relative} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode())
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def test_url_has_secret_prefix_and_requests_without_it_are_refused(folder: Path) -> None:
    with serve(folder) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert len(server.token) >= 20 and server.url.endswith(server.token)
        base = server.url.rsplit("/", 1)[0]
        assert requests.get(f"{base}/{REL}", timeout=5).status_code == 403
        assert requests.get(f"{base}/wrong-secret/{REL}", timeout=5).status_code == 403
        assert requests.get(f"{server.url}/nvs/missing.mp4", timeout=5).status_code == 404
        assert requests.get(f"{server.url}/nvs/%2e%2e/%2e%2e/etc/passwd", timeout=5).status_code == 404
        assert [r.status for r in server.requests] == [403, 403, 404, 404]
        assert all(server.token not in r.path for r in server.requests)


def test_head_get_and_ranges(folder: Path, body: bytes) -> None:
    with serve(folder) as server, requests.Session() as session:
        url = f"{server.url}/{REL}"
        head = session.head(url, timeout=5)
        assert head.status_code == 200 and head.headers["Content-Length"] == str(SIZE) and head.content == b""
        assert session.get(url, timeout=5).content == body
        ranged = session.get(url, headers={"Range": "bytes=1000-"}, timeout=5)
        assert ranged.status_code == 206 and ranged.content == body[1000:]
        assert ranged.headers["Content-Range"] == f"bytes 1000-{SIZE - 1}/{SIZE}"
        closed = session.get(url, headers={"Range": "bytes=10-19"}, timeout=5)
        assert closed.status_code == 206 and closed.content == body[10:20]
        suffix = session.get(url, headers={"Range": "bytes=-5"}, timeout=5)
        assert suffix.content == body[-5:]
        beyond = session.get(url, headers={"Range": f"bytes={SIZE}-"}, timeout=5)
        assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{SIZE}"
        multi = session.get(url, headers={"Range": "bytes=0-1,5-6"}, timeout=5)
        assert multi.status_code == 200 and multi.content == body  # unsupported forms are ignored, as HTTP allows
    assert server.requests[2] == RequestRecord("GET", REL, "bytes=1000-", 206, SIZE - 1000)
    assert [r.method for r in server.requests][:2] == ["HEAD", "GET"]


def test_drop_after_bytes_cuts_the_first_gets_only(folder: Path, body: bytes) -> None:
    with serve(folder, Faults(drop_after_bytes=12_345, drop_requests=2)) as server:
        for _ in range(2):
            head, data = raw_get(server, REL)
            assert f"Content-Length: {SIZE}".encode() in head and data == body[:12_345]
        assert raw_get(server, REL)[1] == body
        server.faults = Faults(drop_after_bytes=0, drop_requests=None)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(f"{server.url}/{REL}", timeout=5).content
    assert [r.bytes_sent for r in server.requests] == [12_345, 12_345, SIZE, 0]


def test_counted_errors_per_path_and_global_with_retry_after(folder: Path) -> None:
    with serve(folder, Faults(error_status=429, error_requests=2, retry_after=7)) as server:
        url = f"{server.url}/{REL}"
        first = requests.get(url, timeout=5)
        assert first.status_code == 429 and first.headers["Retry-After"] == "7"
        assert requests.head(url, timeout=5).status_code == 429
        assert requests.get(url, timeout=5).status_code == 200
        assert requests.get(f"{server.url}/{OTHER}", timeout=5).status_code == 429  # counted per path
        server.faults = Faults(error_status=500, error_requests=1, scope="global")
        assert requests.get(url, timeout=5).status_code == 500
        assert requests.get(f"{server.url}/{OTHER}", timeout=5).status_code == 200
        server.faults = Faults(error_status=503, error_requests=1, error_methods=("GET",), paths=("*.json",))
        assert requests.head(f"{server.url}/{OTHER}", timeout=5).status_code == 200
        assert requests.get(url, timeout=5).status_code == 200
        assert requests.get(f"{server.url}/{OTHER}", timeout=5).status_code == 503


def test_faults_reach_the_dataset_files_by_pattern(synthetic_dataset: Path) -> None:
    """Served as serve-synthetic has it (the dataset below ``dataset/``): a pattern picks dataset files by kind."""
    video = "dataset/017/sequences/EXP-1-head/images/cam_222200037.mp4"
    table = "dataset/metadata_sequences.csv"
    background = "dataset/017/sequences/BACKGROUND/image_222200037.jpg"
    size = (synthetic_dataset.parent / video).stat().st_size
    faults = Faults(error_requests=1, paths=("dataset/*.mp4",))
    with serve(synthetic_dataset.parent, faults) as server, requests.Session() as session:
        assert [session.get(f"{server.url}/{video}", timeout=5).status_code for _ in range(2)] == [503, 200]
        assert session.get(f"{server.url}/{table}", timeout=5).status_code == 200
        server.faults = Faults(drop_after_bytes=100, paths=("dataset/*/images/*.mp4",))
        assert len(raw_get(server, video)[1]) == 100
        assert raw_get(server, background)[1] == (synthetic_dataset.parent / background).read_bytes()
        server.faults = Faults(web_page=True, paths=("dataset/*.csv",))
        assert session.get(f"{server.url}/{table}", timeout=5).content == WEB_PAGE
        assert session.head(f"{server.url}/{video}", timeout=5).headers["Content-Length"] == str(size)
    assert [(r.path, r.status) for r in server.requests][:3] == [(video, 503), (video, 200), (table, 200)]


def test_random_errors_are_reproducible_from_the_seed(folder: Path) -> None:
    def statuses(seed: int) -> list[int]:
        with serve(folder, Faults(error_rate=0.5, seed=seed)) as server, requests.Session() as session:
            return [session.head(f"{server.url}/{REL}", timeout=5).status_code for _ in range(20)]

    first = statuses(3)
    assert first == statuses(3)
    assert 0 < first.count(503) < 20 and set(first) == {200, 503}


def test_ignore_range_and_short_body(folder: Path, body: bytes) -> None:
    with serve(folder, Faults(ignore_range=True)) as server:
        response = requests.get(f"{server.url}/{REL}", headers={"Range": "bytes=500-"}, timeout=5)
        assert response.status_code == 200 and response.content == body
        assert response.headers["Accept-Ranges"] == "none"
        server.faults = Faults(short_body_bytes=100)
        head, data = raw_get(server, REL)
        assert f"Content-Length: {SIZE}".encode() in head and data == body[:-100]
        head, data = raw_get(server, REL, "Range: bytes=1000-\r\n")
        assert f"Content-Length: {SIZE - 1000}".encode() in head and data == body[1000:-100]


def test_reason_phrase_echoing_the_request_path(folder: Path) -> None:
    suffix = ": {path} \x1b]0;pwned\x07\x1b[2J"
    with serve(folder, Faults(reason_suffix=suffix, error_requests=1, paths=("*.mp4",))) as server:
        missing = requests.get(f"{server.url}/nvs/missing.mp4", timeout=5)
        busy = requests.get(f"{server.url}/{REL}", timeout=5)
        other = requests.get(f"{server.url}/{OTHER.replace('.json', '.txt')}", timeout=5)
    secret_path = f"/{server.token}/nvs/missing.mp4"
    assert missing.status_code == 404 and missing.reason == f"Not Found: {secret_path} \x1b]0;pwned\x07\x1b[2J"
    assert secret_path in missing.text
    assert busy.status_code == 503 and busy.reason.startswith(f"Service Unavailable: /{server.token}/{REL}")
    assert other.reason == "Not Found"  # another path: the plain phrase


def test_web_page_instead_of_the_file(folder: Path) -> None:
    with serve(folder, Faults(web_page=True, paths=(REL,))) as server:
        head = requests.head(f"{server.url}/{REL}", timeout=5)
        get = requests.get(f"{server.url}/{REL}", headers={"Range": "bytes=10-"}, timeout=5)
        other = requests.head(f"{server.url}/{OTHER}", timeout=5)
        server.faults = Faults(web_page=True, web_page_type="application/octet-stream")
        disguised = requests.get(f"{server.url}/{OTHER}", timeout=5)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(WEB_PAGE))
    assert head.headers["Content-Type"].startswith("text/html")
    assert get.status_code == 200 and get.content == WEB_PAGE  # Range ignored: it is not the file
    assert other.headers["Content-Length"] == "1000"
    assert disguised.content == WEB_PAGE and disguised.headers["Content-Type"] == "application/octet-stream"


def test_gzip_content_encoding(folder: Path, body: bytes) -> None:
    compressed = gzip.compress(body, mtime=0)
    with serve(folder, Faults(content_encoding="gzip")) as server:
        head = requests.head(f"{server.url}/{REL}", timeout=5)
        head_block, data = raw_get(server, REL)
    assert head.headers["Content-Encoding"] == "gzip" and head.headers["Content-Length"] == str(len(compressed))
    assert b"Content-Encoding: gzip" in head_block and data == compressed and gzip.decompress(data) == body


def test_no_content_length_and_overlong_bodies(folder: Path, body: bytes) -> None:
    with serve(folder, Faults(no_content_length=True)) as server:
        head = requests.head(f"{server.url}/{REL}", timeout=5)
        head_block, data = raw_get(server, REL)
        ranged_block, ranged = raw_get(server, REL, "Range: bytes=1000-\r\n")
        server.faults = Faults(no_content_length=True, drop_after_bytes=5000)
        _, cut = raw_get(server, REL)
        server.faults = Faults(overlong_bytes=3000)
        long_head = requests.head(f"{server.url}/{REL}", timeout=5)
        long_block, long_data = raw_get(server, REL)
    assert "Content-Length" not in head.headers and head.status_code == 200
    assert b"Content-Length" not in head_block and data == body
    assert b"Content-Range: bytes 1000-" in ranged_block and ranged == body[1000:]
    assert cut == body[:5000]
    assert long_head.headers["Content-Length"] == str(SIZE)  # HEAD announces the file
    assert b"Content-Length" not in long_block and long_data == body + bytes(3000)


def test_redirect_to_a_given_location(folder: Path) -> None:
    with serve(folder, Faults(redirect_to="http://elsewhere.invalid{path}", paths=(REL,))) as server:
        answer = requests.get(f"{server.url}/{REL}", allow_redirects=False, timeout=5)
        other = requests.get(f"{server.url}/{OTHER}", allow_redirects=False, timeout=5)
    assert answer.status_code == 302 and answer.headers["Location"] == f"http://elsewhere.invalid/{server.token}/{REL}"
    assert other.status_code == 200
    assert [r.status for r in server.requests] == [302, 200]


def test_throttle_and_delay(folder: Path) -> None:
    with serve(folder, Faults(bytes_per_second=10_000, paths=("*.json",))) as server:
        started = time.perf_counter()
        assert len(requests.get(f"{server.url}/{OTHER}", timeout=5).content) == 1000
        assert time.perf_counter() - started >= 0.09  # 1000 bytes at 10 kB/s
        started = time.perf_counter()
        assert len(requests.get(f"{server.url}/{REL}", timeout=5).content) == SIZE
        assert time.perf_counter() - started < 1.0  # another path: not throttled (10 s if it were)
        server.faults = Faults(delay_s=0.3)
        with pytest.raises(requests.Timeout):
            requests.head(f"{server.url}/{OTHER}", timeout=0.1)
        started = time.perf_counter()
        assert requests.head(f"{server.url}/{OTHER}", timeout=5).status_code == 200
        assert time.perf_counter() - started >= 0.3


def test_stop_ends_open_connections_and_frees_the_port(folder: Path) -> None:
    server = serve(folder, Faults(bytes_per_second=50_000))
    session = requests.Session()
    assert session.head(f"{server.url}/{REL}", timeout=5).status_code == 200  # keep-alive connection stays open
    result: dict = {}

    def slow_get() -> None:
        try:
            result["length"] = len(requests.get(f"{server.url}/{REL}", timeout=5).content)
        except requests.RequestException as error:
            result["error"] = error

    reader = threading.Thread(target=slow_get)
    reader.start()
    time.sleep(0.3)
    started = time.perf_counter()
    server.stop()
    reader.join(timeout=5)
    assert time.perf_counter() - started < 3
    assert not reader.is_alive() and "error" in result  # the throttled body was cut, not finished
    with pytest.raises(requests.ConnectionError):
        requests.head(f"{server.url}/{REL}", timeout=2)
    session.close()


def test_serving_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        serve(tmp_path / "absent")
