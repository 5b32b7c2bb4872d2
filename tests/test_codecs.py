"""The JPEG XL zarr codec: round trips through real stores on disk, its work off zarr's event loop, the
validation of a stored configuration and the decoding of corrupt chunks."""

from __future__ import annotations

import asyncio
import gc
import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import zarr

from helpers import run_cli
from nersemble_zarr import storage
from nersemble_zarr import store as store_module
from nersemble_zarr.codecs import JPEGXL_CODEC_NAME, JpegXLCodec
from nersemble_zarr.convert import convert
from nersemble_zarr.errors import CodecConfigError, CorruptChunk, StoreError

HEIGHT, WIDTH = 48, 40


def frames(n: int, colour: bool = True) -> np.ndarray:
    """Smooth moving gradients with a little noise: (n, H, W, 3) or (n, H, W) uint8."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    planes = [np.sin(y / (7 + c) + t / 3) + np.cos(x / (5 + c) - t / 4) for t in range(n) for c in range(3)]
    values = (np.stack(planes).reshape(n, 3, HEIGHT, WIDTH) + 2) * 60 + rng.normal(0, 2, (n, 3, HEIGHT, WIDTH))
    values = np.clip(values, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(values if colour else values[..., 0])


def write_array(path: Path, data: np.ndarray, codec: JpegXLCodec, sharded: bool = True) -> zarr.Array:
    """An array (camera, frame, ...) on disk: one frame per chunk, all frames of a camera in one shard."""
    frame_shape = data.shape[2:]
    array = zarr.create_array(
        path, shape=data.shape, dtype=np.uint8, chunks=(1, 1) + frame_shape,
        shards=(1, data.shape[1]) + frame_shape if sharded else None, serializer=codec, compressors=[],
        zarr_format=3,
    )
    array[:] = data
    return array


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2))


@pytest.mark.parametrize("colour", [True, False])
def test_lossless_round_trip_through_a_store_on_disk_is_exact(tmp_path, colour):
    data = frames(6, colour).reshape((2, 3) + frames(1, colour).shape[1:])
    write_array(tmp_path / "a.zarr", data, JpegXLCodec(lossless=True, effort=1))
    stored = zarr.open_array(tmp_path / "a.zarr", mode="r")
    assert isinstance(stored.serializer, JpegXLCodec) and stored.serializer.lossless
    np.testing.assert_array_equal(stored[:], data)
    np.testing.assert_array_equal(stored[1, 2], data[1, 2])


def test_lossy_round_trip_stays_within_the_psnr_bound_and_is_smaller(tmp_path):
    data = frames(4).reshape(2, 2, HEIGHT, WIDTH, 3)
    write_array(tmp_path / "lossy.zarr", data, JpegXLCodec(distance=1.0, effort=3))
    write_array(tmp_path / "exact.zarr", data, JpegXLCodec(lossless=True, effort=3))
    lossy, exact = (zarr.open_array(tmp_path / name, mode="r") for name in ("lossy.zarr", "exact.zarr"))
    decoded = lossy[:]
    assert decoded.shape == data.shape and decoded.dtype == np.uint8
    assert not np.array_equal(decoded, data)
    assert psnr(decoded, data) > 35
    assert lossy.nbytes_stored() < exact.nbytes_stored()


def test_encode_and_decode_run_off_zarrs_event_loop(tmp_path, monkeypatch):
    calls: list[tuple[str, str, bool]] = []

    def recording(name: str):
        real = getattr(imagecodecs, name)

        def call(*args, **kwargs):
            try:
                asyncio.get_running_loop()
                on_loop = True
            except RuntimeError:
                on_loop = False
            calls.append((name, threading.current_thread().name, on_loop))
            return real(*args, **kwargs)

        return call

    for name in ("jpegxl_encode", "jpegxl_decode"):
        monkeypatch.setattr(imagecodecs, name, recording(name))
    data = frames(4).reshape(2, 2, HEIGHT, WIDTH, 3)
    write_array(tmp_path / "a.zarr", data, JpegXLCodec(lossless=True, effort=1))
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "a.zarr", mode="r")[:], data)  # the real codec ran
    assert sorted({name for name, _, _ in calls}) == ["jpegxl_decode", "jpegxl_encode"]
    assert len(calls) == 8
    on_loop = [(name, thread) for name, thread, loop in calls if loop]
    assert not on_loop, f"codec calls ran on an event loop thread: {on_loop}"


BAD_CONFIGURATIONS = [
    ({"effort": 12}, "effort", "12"),
    ({"effort": 0}, "effort", "0"),
    ({"effort": "3"}, "effort", "'3'"),
    ({"effort": True}, "effort", "True"),
    ({"effort": 3.5}, "effort", "3.5"),
    ({"distance": -1}, "distance", "-1"),
    ({"distance": 26.0}, "distance", "26.0"),
    ({"distance": "1.0"}, "distance", "'1.0'"),
    ({"distance": None}, "distance", "None"),
    ({"distance": float("nan")}, "distance", "nan"),
    ({"lossless": "yes"}, "lossless", "'yes'"),
    ({"lossless": 1}, "lossless", "1"),
    ({"quality": 90}, "unknown key", "'quality'"),
]


@pytest.mark.parametrize("changes, key, value", BAD_CONFIGURATIONS)
def test_from_dict_refuses_a_bad_configuration_in_one_sentence(changes, key, value):
    configuration = {**JpegXLCodec().to_dict()["configuration"], **changes}
    with pytest.raises(CodecConfigError) as raised:
        JpegXLCodec.from_dict({"name": JPEGXL_CODEC_NAME, "configuration": configuration})
    message = str(raised.value)
    assert key in message and value in message and "zarr.json" in message
    assert isinstance(raised.value, ValueError) and message.count(". ") == 0 and "\n" not in message


def test_from_dict_refuses_a_configuration_that_is_not_an_object():
    with pytest.raises(CodecConfigError, match=r"\[1, 2\]"):
        JpegXLCodec.from_dict({"name": JPEGXL_CODEC_NAME, "configuration": [1, 2]})


def test_from_dict_accepts_a_stored_configuration_and_fills_defaults():
    assert JpegXLCodec.from_dict(JpegXLCodec(distance=2, effort=7).to_dict()) == JpegXLCodec(distance=2, effort=7)
    assert JpegXLCodec.from_dict({"name": JPEGXL_CODEC_NAME, "configuration": {"lossless": True}}) == JpegXLCodec(
        lossless=True)


def test_the_constructor_refuses_a_bad_setting():
    with pytest.raises(CodecConfigError, match="effort is 11"):
        JpegXLCodec(effort=11)


def tamper(store: Path, key: str, value) -> int:
    """Set ``key`` of every JPEG XL codec configuration in the store's zarr.json files; the number changed."""
    changed = 0
    for path in store.rglob("zarr.json"):
        if JPEGXL_CODEC_NAME not in path.read_text():
            continue
        document = json.loads(path.read_text())

        def visit(node):
            nonlocal changed
            if isinstance(node, dict):
                if node.get("name") == JPEGXL_CODEC_NAME:
                    node["configuration"][key] = value
                    changed += 1
                for child in node.values():
                    visit(child)
            elif isinstance(node, list):
                for child in node:
                    visit(child)

        visit(document)
        path.write_text(json.dumps(document))
    return changed


def test_a_tampered_zarr_json_is_one_sentence_when_opening(tmp_path):
    store = tmp_path / "a.zarr"
    zarr.open_group(store, mode="w", zarr_format=3)
    write_array(store / "images", frames(2).reshape(1, 2, HEIGHT, WIDTH, 3), JpegXLCodec(lossless=True, effort=1))
    assert tamper(store, "effort", 99) == 1
    with pytest.raises(CodecConfigError, match="effort is 99"):
        zarr.open_array(store / "images", mode="r")
    with pytest.raises(StoreError, match=rf"^Cannot open images of the store {store}: the JPEG XL .* effort is 99;"):
        storage.open_array(store, "images")


def _header(*numbers: int) -> bytes:
    return b"".join(n.to_bytes(4, "little") for n in numbers)


CORRUPTIONS = {
    "frame count": lambda data: _header(5) + data[4:],
    "stream length": lambda data: data[:4] + _header(int.from_bytes(data[4:8], "little") + 10) + data[8:],
    "truncated": lambda data: data[: len(data) // 2],
    "truncated header": lambda data: data[:2],
    "empty": lambda data: b"",
    "codestream": lambda data: data[:8] + b"\0\0\0\0" + data[12:],
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupt_chunk_is_one_sentence(tmp_path, corruption):
    store = tmp_path / "a.zarr"
    write_array(store, frames(2).reshape(1, 2, HEIGHT, WIDTH, 3), JpegXLCodec(lossless=True, effort=1), sharded=False)
    chunk = store / "c" / "0" / "1" / "0" / "0" / "0"
    chunk.write_bytes(CORRUPTIONS[corruption](chunk.read_bytes()))
    array = zarr.open_array(store, mode="r")
    assert array[0, 0].shape == (HEIGHT, WIDTH, 3)  # the other chunk still reads
    with pytest.raises(CorruptChunk, match=r"^A JPEG XL chunk of the store is corrupt .*: ") as raised:
        array[0, 1]
    assert "\n" not in str(raised.value)


@pytest.fixture(scope="module")
def tampered_store(synthetic_root, tmp_path_factory) -> Path:
    """A converted jpegxl-lossless store whose zarr.json files (the array's and the consolidated root's) say
    effort 12 for the images and alpha arrays."""
    store = tmp_path_factory.mktemp("tampered") / "jxl.zarr"
    convert(synthetic_root, store, benchmarks=("mono_flame_avatar",), sequences=("EXP-1-head",),
            codec="jpegxl-lossless", workers=1)
    assert "jpegxl" in run_cli("info", store, exit_code=0).output
    assert tamper(store, "effort", 12) >= 2
    return store


def test_a_tampered_store_is_one_sentence_in_the_cli(tampered_store):
    # A fresh process, so that asyncio's reports of the other arrays' abandoned tasks at exit would show too.
    command = [sys.executable, "-m", "nersemble_zarr", "info", str(tampered_store)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "effort is 12" in lines[0], result.stderr


def test_a_tampered_store_is_one_sentence_in_the_library(tampered_store, caplog):
    from nersemble_zarr.inventory import inventory

    with pytest.raises(StoreError, match=f"^Cannot open the store {tampered_store}: .*effort is 12"):
        store_module.open(tampered_store)
    for _ in range(3):  # listing a group's arrays concurrently, zarr abandons the other array's failure
        with pytest.raises(CodecConfigError, match="effort is 12"):
            inventory(tampered_store)
    gc.collect()
    assert not [record for record in caplog.records if record.name == "asyncio"]
