"""Predictions and mesh inputs that used to be scored wrongly, followed outside the folder or read into a
traceback (issue 22, cases 7, 8, 10, 11, 12, 19). Each is refused in one sentence naming the file or value,
with a non-zero exit and nothing new or changed in the user's folder.

The videos are real H.264 made with PyAV: an mp4 whose header lists 6 frames of which 3 decode (its edit list
cut), and one whose size changes mid-stream (a second encoder's in-band SPS after the first's 3 frames).
"""

from __future__ import annotations

import struct
import tracemalloc
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import imagecodecs
import numpy as np
import pytest

from helpers import run_cli, tree_digest
from nersemble_zarr import catalogue, schema
from nersemble_zarr import store as store_module
from nersemble_zarr.errors import CorruptVideo, EvaluationError, FlameError, SubmissionError
from nersemble_zarr.evaluation import evaluate
from nersemble_zarr.flame import FlameParameters
from nersemble_zarr.flame.mesh_io import ply_bytes
from nersemble_zarr.submission import SvfrFlamePredictions, export_svfr_submission
from nersemble_zarr.submission.meshfile import MeshFileError, read_obj, read_ply
from nersemble_zarr.submission.svfr_predictions import read_landmarks
from nersemble_zarr.video import VideoWriter, count_decodable_frames, iter_frames, probe
from test_svfr_submission import FIRST, key_tuple, npy, tetra, write_prediction, zip_of

NVS = (388, "GLASSES")
CAMERA = "222200042"                            # a train camera: the store holds its ground truth
HOLD_OUT = catalogue.NVS_HOLD_OUT_SERIALS[0]    # a camera of the NVS submission
NO_EXTRAS = ["--no-lpips", "--no-jod"]


def one_error(result, exit_code: int, *fragments: str) -> str:
    """The command failed with ``exit_code``; its last line is the only ``Error:`` line and holds every fragment."""
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == exit_code, result.output
    assert lines and lines[-1].startswith("Error: ") and sum(line.startswith("Error: ") for line in lines) == 1, \
        result.output
    for fragment in fragments:
        assert fragment in lines[-1], result.output
    return lines[-1]


def truth(converted: Path, serial: str = CAMERA) -> np.ndarray:
    dataset = store_module.sequence(store_module.open(converted, dask=False), "nvs", *NVS)
    return dataset[schema.IMAGES].sel({schema.SERIAL: serial}).values


# ------------------------------------------------------------------------------------------------ videos
def header_says_more_than_decodes(path: Path, frames: np.ndarray) -> Path:
    """An mp4 of ``frames`` whose edit list (elst) is cut to half its duration: the sample table, which is the
    header's frame count, still lists every frame, but the demuxer discards the later half, which decodes to
    nothing (no error)."""
    with VideoWriter(path, width=frames.shape[2], height=frames.shape[1], fps=catalogue.NVS_FPS) as writer:
        writer.write_all(frames)
    data = bytearray(path.read_bytes())
    at = data.index(b"elst")
    assert data[at + 4] == 0 and struct.unpack(">I", data[at + 8: at + 12])[0] == 1  # version 0, one entry
    duration = struct.unpack(">I", data[at + 12: at + 16])[0]
    data[at + 12: at + 16] = struct.pack(">I", duration // 2)
    path.write_bytes(bytes(data))
    return path


def size_switching_video(path: Path, first: np.ndarray, second: np.ndarray) -> Path:
    """One H.264 stream: ``first`` from one encoder, then ``second`` (another size) from a second encoder that
    repeats its SPS/PPS in band, so the decoder switches size mid-stream while the header keeps the first's."""
    rate = Fraction(catalogue.NVS_FPS).limit_denominator(1000)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = first.shape[2], first.shape[1], "yuv420p"
        for frame in first:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = second.shape[2], second.shape[1], "yuv420p"
        encoder.time_base, encoder.framerate = stream.codec_context.time_base, rate
        encoder.options = {"x264-params": "repeat-headers=1"}
        packets = []
        for index, frame in enumerate(second):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
            picture.pts, picture.time_base = index, encoder.time_base
            packets += encoder.encode(picture)
        packets += encoder.encode(None)
        for packet in packets:
            packet.stream, packet.time_base = stream, encoder.time_base
            packet.pts, packet.dts = packet.pts + len(first), packet.dts + len(first)
            container.mux(packet)
    return path


def broken_video(kind: str, path: Path, frames: np.ndarray) -> Path:
    if kind == "header 6, decodes 3":
        return header_says_more_than_decodes(path, frames)
    return size_switching_video(path, frames[:3], frames[3:, :64, :64])


BROKEN = {  # kind -> the sentence fragment of validate-submission and evaluate
    "header 6, decodes 3": "has 3 frames (its header claims 6); the metadata expects 6.",
    "size changes at frame 3": "is corrupt at frame 3 (its frames change from the header's 110x160 yuv420p to "
                               "64x64 yuv420p).",
}


def test_the_broken_videos_are_what_they_claim(converted, tmp_path):
    frames = truth(converted)
    short = header_says_more_than_decodes(tmp_path / "short.mp4", frames)
    assert probe(short).n_frames == 6 and count_decodable_frames(short).decoded == 3
    assert count_decodable_frames(short).failed == ()
    switching = size_switching_video(tmp_path / "switch.mp4", frames[:3], frames[3:, :64, :64])
    assert (probe(switching).width, probe(switching).height, probe(switching).n_frames) == (110, 160, 6)
    with av.open(str(switching)) as container:
        sizes = [(frame.width, frame.height) for frame in container.decode(video=0)]
    assert sizes == [(110, 160)] * 3 + [(64, 64)] * 3  # a real mid-stream switch, every frame decodes


@pytest.mark.parametrize("kind", list(BROKEN))
def test_validate_submission_and_evaluate_refuse_the_same_broken_video(kind, converted, synthetic_root, tmp_path):
    """Cases 7 and 8: evaluate scored 3 of 6 frames (exit 0; with JOD a StopIteration traceback), or died in
    numpy on the 64x64 frames; validate-submission passed the size switch. Both now refuse both, in one line."""
    work = tmp_path / "work"
    work.mkdir()
    evaluated = work / "predictions.zip"
    with zipfile.ZipFile(evaluated, "w") as archive:
        archive.write(broken_video(kind, tmp_path / "a.mp4", truth(converted)),
                      catalogue.submission_entry(*NVS, CAMERA))
    submitted = work / "submission.zip"
    with zipfile.ZipFile(submitted, "w") as archive:
        archive.write(broken_video(kind, tmp_path / "b.mp4", truth(converted)),
                      catalogue.submission_entry(*NVS, HOLD_OUT))
    before = tree_digest(work)

    result = run_cli("validate-submission", submitted, "-b", "nvs", "--root", synthetic_root, "--partial",
                     "--resolution", "110x160")
    one_error(result, 1, f"{submitted} is not a valid nvs submission")
    assert f"{catalogue.submission_entry(*NVS, HOLD_OUT)} {BROKEN[kind]}" in result.output

    entry = catalogue.submission_entry(*NVS, CAMERA)
    for metrics in (NO_EXTRAS, ["--no-lpips", "--device", "cpu"]):  # without and with JOD
        result = run_cli("evaluate", evaluated, "--store", converted, "-b", "nvs", *metrics, "--json", work / "s.json")
        one_error(result, 1, entry, str(evaluated), BROKEN[kind])
    assert tree_digest(work) == before  # no scores, no copies left beside the zips


def test_every_reader_of_videos_refuses_a_size_change(converted, tmp_path):
    """The per-frame check lives in the package's one decoder (``iter_frames``), which convert and the data
    managers read through as well."""
    path = size_switching_video(tmp_path / "switch.mp4", truth(converted)[:3], truth(converted)[3:, :64, :64])
    with pytest.raises(CorruptVideo, match=r"corrupt at frame 3 \(its frames change from the header's 110x160"):
        list(iter_frames(path))
    assert len(list(iter_frames(path, stop=3))) == 3  # frames before the change still read


# ------------------------------------------------------------------------------------------------ case 11
def image_folder(root: Path, frames: np.ndarray, numbers: list[int], serial: str = CAMERA) -> Path:
    folder = root / f"{NVS[0]:03d}" / NVS[1] / f"cam_{serial}"
    folder.mkdir(parents=True)
    for number, frame in zip(numbers, frames):
        (folder / f"{number:05d}.png").write_bytes(imagecodecs.png_encode(frame))
    return root


def test_a_gap_in_frame_numbers_is_refused_naming_the_missing_frame(converted, synthetic_root, tmp_path):
    """Case 11: 00000-00002, 00004-00006 was taken as 6 consecutive frames (00004.png scored against frame 3)."""
    frames = truth(converted)
    work = tmp_path / "work"
    gap = image_folder(work / "gap", frames, [0, 1, 2, 4, 5, 6])
    before = tree_digest(work)
    folder = gap / "388" / "GLASSES" / f"cam_{CAMERA}"
    result = run_cli("evaluate", gap, "--store", converted, "-b", "nvs", *NO_EXTRAS, "--json", work / "s.json")
    one_error(result, 1, f"The frames of {folder} skip 00003", "from 00000 to 00006")

    # export-submission reads the same folders through the same check
    submission = image_folder(work / "submit", frames, [0, 1, 2, 4, 5, 6], HOLD_OUT)
    before = tree_digest(work)
    result = run_cli("export-submission", submission, work / "out.zip", "-b", "nvs", "--root", synthetic_root,
                     "--partial", "--resolution", "110x160")
    one_error(result, 1, "skip 00003", f"cam_{HOLD_OUT}")
    assert tree_digest(work) == before


def test_frames_numbered_by_original_timesteps_map_by_number(converted, tmp_path):
    """Numbering by the store's timesteps (0, 3, 6, ...) is still read, frame by number; a gap in it is refused."""
    frames = truth(converted)
    dataset = store_module.sequence(store_module.open(converted, dask=False), "nvs", *NVS)
    timesteps = [int(t) for t in dataset[schema.TIMESTEP].values]
    assert timesteps != list(range(len(timesteps)))  # the synthetic store keeps every 3rd frame
    by_position = image_folder(tmp_path / "positions", frames[::-1], list(range(6)))
    by_timestep = image_folder(tmp_path / "timesteps", frames[::-1], timesteps)
    scores = [evaluate(path, converted, "nvs", lpips=False, jod=False).to_dict() for path in (by_position, by_timestep)]
    assert scores[0] == scores[1] and scores[0]["mean"]["psnr"] < 60
    skipped = image_folder(tmp_path / "skipped", frames, timesteps[:2] + timesteps[3:] + [timesteps[-1] + 3])
    with pytest.raises(EvaluationError, match=f"skip {timesteps[2]:05d} \\(numbered by original frame index"):
        evaluate(skipped, converted, "nvs", lpips=False, jod=False)


# ------------------------------------------------------------------------------------------------ case 12
@pytest.mark.parametrize("level", ["participant folder", "image folder", "mesh folder's parent", "video camera folder"])
def test_symlinked_prediction_folders_are_refused(level, converted, tmp_path):
    """Case 12: a participant folder linked to a folder outside PREDICTIONS was followed (a linked mesh file was
    refused); every link below the predictions folder is refused the same way, for meshes and for images."""
    outside, predictions, out = tmp_path / "outside", tmp_path / "pred", tmp_path / "out"
    out.mkdir()
    if level == "video camera folder":
        image_folder(outside, truth(converted), list(range(6)))
        link = predictions / "388" / "GLASSES" / f"cam_{CAMERA}"
        link.parent.mkdir(parents=True)
        link.symlink_to(outside / "388" / "GLASSES" / f"cam_{CAMERA}", target_is_directory=True)
        before = tree_digest(tmp_path)
        result = run_cli("evaluate", predictions, "--store", converted, "-b", "nvs", *NO_EXTRAS,
                         "--json", out / "s.json")
    else:
        participant, image = FIRST
        write_prediction(outside, FIRST, "posed", tetra(0))
        link = {"participant folder": predictions / f"{participant:03d}",
                "image folder": predictions / f"{participant:03d}" / catalogue.svfr_folder(image),
                "mesh folder's parent": predictions / catalogue.SVFR}[level]
        target = {"participant folder": outside / f"{participant:03d}",
                  "image folder": outside / f"{participant:03d}" / catalogue.svfr_folder(image),
                  "mesh folder's parent": outside}[level]
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=True)
        before = tree_digest(tmp_path)
        result = run_cli("export-submission", predictions, out / "s.zip", "-b", "svfr", "--partial")
    one_error(result, 1, f"{link} is a symbolic link")
    assert tree_digest(tmp_path) == before


# ------------------------------------------------------------------------------------------------ case 10
def test_complex_vertices_landmarks_and_parameters_are_refused_not_truncated(tmp_path):
    vertices, faces, landmarks = tetra(0)
    label = f"The posed mesh of 017/{catalogue.svfr_folder(FIRST[1])}"
    complex_meshes = {"vertices": (vertices + 1e-3j, faces, landmarks), "landmarks": (vertices, faces, landmarks + 2j)}
    for what, mesh in complex_meshes.items():
        with pytest.raises(SubmissionError, match=f"{label}: the {what} array has dtype complex(64|128); expected"):
            export_svfr_submission({"posed": {key_tuple(FIRST): mesh}}, tmp_path / "s.zip", partial=True)
    flame = SvfrFlamePredictions({key_tuple(FIRST): {"shape": np.zeros(300, complex)}})
    with pytest.raises(SubmissionError, match="'shape' of .* has dtype complex128"):
        export_svfr_submission(flame, tmp_path / "s.zip", tasks=("neutral",), partial=True)
    with pytest.raises(FlameError, match="'expression' has dtype complex64"):
        FlameParameters(shape=np.zeros(300), scale=1.0, expression=np.zeros((1, 100), np.complex64),
                        rotation=np.zeros((1, 3)), translation=np.zeros((1, 3)), jaw=np.zeros((1, 3)),
                        neck=np.zeros((1, 3)), eyes=np.zeros((1, 6)))
    assert list(tmp_path.iterdir()) == []


def test_complex_landmarks_in_a_folder_and_in_a_zip_are_refused(tmp_path):
    vertices, faces, landmarks = tetra(0)
    predictions, out = tmp_path / "pred", tmp_path / "out"
    out.mkdir()
    mesh = write_prediction(predictions, FIRST, "posed", (vertices, faces, landmarks.astype(np.complex128)))
    before = tree_digest(tmp_path)
    result = run_cli("export-submission", predictions, out / "s.zip", "-b", "svfr", "--partial")
    one_error(result, 1, f"The landmarks {mesh.parent / 'landmarks_posed.npy'} has dtype complex128")
    assert tree_digest(tmp_path) == before

    entry = f"017/{catalogue.svfr_submission_folder(FIRST[1])}/"
    path = zip_of(tmp_path / "complex.zip", {entry + "mesh_posed.ply": ply_bytes(vertices, faces),
                                             entry + "landmarks_posed.npy": npy(landmarks.astype(np.complex128))})
    result = run_cli("validate-submission", path, "-b", "svfr", "--partial")
    one_error(result, 1, f"{path} is not a valid svfr submission")
    assert f"{entry}landmarks_posed.npy has dtype complex128; expected real numbers" in result.output


# ------------------------------------------------------------------------------------------------ case 19
PLY_HEADER = ("ply\nformat binary_little_endian 1.0\nelement vertex 4\nproperty float x\nproperty float y\n"
              "property float z\nelement face 4\nproperty list {count} int vertex_indices\nend_header\n")


def ply_with_list_lengths(count_type: str, lengths: list) -> bytes:
    code = {"float": "f", "char": "b"}[count_type]
    vertices, faces, _ = tetra(0)
    body = vertices.astype("<f4").tobytes() + b"".join(struct.pack(f"<{code}3i", n, *face)
                                                       for n, face in zip(lengths, faces))
    return PLY_HEADER.format(count=count_type).encode() + body


def npy_declaring(data: bytes, shape: tuple[int, ...]) -> bytes:
    """The .npy ``data`` with its header's shape replaced by ``shape`` (the data after it unchanged)."""
    header_length = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + header_length].decode("latin1").replace("(7, 3)", repr(shape)).rstrip("\n").rstrip()
    padded = header + " " * (-(10 + len(header) + 1) % 64) + "\n"
    return data[:8] + struct.pack("<H", len(padded)) + padded.encode("latin1") + data[10 + header_length:]


HOSTILE_FILES = {  # case -> (file name, bytes, fragment of the reason)
    "PLY list length of type float (NaN)": ("mesh_posed.ply", ply_with_list_lengths("float", [np.nan, 3, 3, 3]),
                                            "list length type 'float'"),
    "PLY list length -1": ("mesh_posed.ply", ply_with_list_lengths("char", [-1, 3, 3, 3]), "a list declares -1 items"),
    "landmarks declaring (10^12, 3)": ("landmarks_posed.npy", npy_declaring(npy(np.zeros((7, 3))), (10**12, 3)),
                                       "declares (1000000000000, 3) values of float64"),
    "OBJ face index of 23 digits": ("mesh_posed.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 12345678901234567890123\n",
                                    "refers to vertex 12345678901234567890123"),
    "ASCII PLY face index of 23 digits": ("mesh_posed.ply", (
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n"
        "3 0 1 12345678901234567890123\n").encode(), "its value 12345678901234567890123 does not fit the type int32"),
}


@pytest.mark.parametrize("case", list(HOSTILE_FILES))
def test_hostile_mesh_files_are_one_sentence_naming_the_file(case, tmp_path):
    name, data, reason = HOSTILE_FILES[case]
    predictions, out = tmp_path / "pred", tmp_path / "out"
    out.mkdir()
    mesh = write_prediction(predictions, FIRST, "posed", tetra(0))
    hostile = mesh.parent / name
    hostile.write_bytes(data)
    if hostile.suffix == ".obj":
        mesh.unlink()
    before = tree_digest(tmp_path)
    result = run_cli("export-submission", predictions, out / "s.zip", "-b", "svfr", "--partial")
    one_error(result, 1, str(hostile), reason)
    assert tree_digest(tmp_path) == before


def test_declared_sizes_are_checked_before_anything_is_allocated(tmp_path):
    """The readers themselves, without the CLI: a MeshFileError or SubmissionError each, and the (10^12, 3)
    landmarks header never allocates (numpy's loader asked for 21.8 TiB)."""
    for case, (name, data, reason) in HOSTILE_FILES.items():
        reader = {".ply": read_ply, ".obj": read_obj}.get(Path(name).suffix)
        if reader is None:
            tracemalloc.start()
            with pytest.raises(SubmissionError, match=reason.replace("(", r"\(").replace(")", r"\)")):
                read_landmarks(data, name)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak < 2**20, peak
        else:
            with pytest.raises(MeshFileError, match=reason):
                reader(data)
    ascii_lie = b"ply\nformat ascii 1.0\nelement vertex 1000000000000\nproperty float x\nproperty float y\n" \
                b"property float z\nend_header\n0 0 0\n"
    with pytest.raises(MeshFileError, match="declares 1000000000000 vertex records"):
        read_ply(ascii_lie)
    # a landmarks zip entry declaring (10^12, 3) is one problem of validate-submission, never a MemoryError
    vertices, faces, _ = tetra(0)
    entry = f"017/{catalogue.svfr_submission_folder(FIRST[1])}/"
    huge = HOSTILE_FILES["landmarks declaring (10^12, 3)"][1]
    path = zip_of(tmp_path / "huge.zip", {entry + "mesh_posed.ply": ply_bytes(vertices, faces),
                                          entry + "landmarks_posed.npy": huge})
    result = run_cli("validate-submission", path, "-b", "svfr", "--partial")
    one_error(result, 1, f"{path} is not a valid svfr submission")
    assert "landmarks_posed.npy is not a readable .npy array (it declares (1000000000000, 3)" in result.output
