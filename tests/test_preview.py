"""Preview pictures: overlay dots land on the subject, hold-out tiles are framed in red, PNGs from the CLI."""

from __future__ import annotations

import shutil

import imagecodecs
import numpy as np
import pytest
import scipy.ndimage
from click.testing import CliRunner

from nersemble_zarr import catalogue, schema
from nersemble_zarr.cli.main import main as cli
from nersemble_zarr.preview import Overlay, contact_sheet, open_sequence, overlay_points
from nersemble_zarr.preview.picture import DPI
from nersemble_zarr.preview.sheet import BORDER, CAPTION_FONT_SIZE, DOT_COLOUR, HOLD_OUT_COLOUR, MIN_TILE_WIDTH, TITLE_FONT_SIZE
from nersemble_zarr.synthetic import render_views

MONO_TRAIN = (393, "EXP-1-head")


def tile_pixels(pixels: np.ndarray, tile) -> np.ndarray:
    return pixels[tile.top : tile.top + tile.height, tile.left : tile.left + tile.width]


def border_ring(pixels: np.ndarray, tile) -> np.ndarray:
    """The BORDER-wide ring of pixels around a tile's image area, as (N, 3)."""
    rows = slice(tile.top - BORDER, tile.top + tile.height + BORDER)
    outer = pixels[rows, tile.left - BORDER : tile.left + tile.width + BORDER]
    mask = np.ones(outer.shape[:2], dtype=bool)
    mask[BORDER:-BORDER, BORDER:-BORDER] = False
    return outer[mask]


def dot_mask(view: np.ndarray) -> np.ndarray:
    return (view == DOT_COLOUR).all(axis=-1)


def fraction_on_subject(view: np.ndarray, alpha: np.ndarray, tile) -> tuple[float, int]:
    """Share of the dot pixels of a tile whose block of the frame is on the subject (alpha > 0, grown by one
    pixel for dots on the silhouette), and the number of dot pixels. A tile pixel covers ``factor`` x ``factor``
    frame pixels of a shrunk frame, or a ``1 / zoom`` part of one of an enlarged frame."""
    rows, columns = np.nonzero(dot_mask(view))
    subject = scipy.ndimage.binary_dilation(alpha > 0)

    def block(index: int) -> slice:
        start = index * tile.factor // tile.zoom
        return slice(start, max(start + 1, (index + 1) * tile.factor // tile.zoom))

    on = [subject[block(r), block(c)].any() for r, c in zip(rows, columns)]
    return float(np.mean(on)) if on else 0.0, len(on)


def truth_alpha(synthetic_config, serial: str, index: int) -> np.ndarray:
    """Ground-truth alpha of any camera (hold-out ones included) of the synthetic NVS sequence."""
    _, alpha = next(render_views(synthetic_config, "nvs", 388, "GLASSES", serial, start=index, stop=index + 1))
    return alpha


@pytest.mark.parametrize("tile_width", [275, 55])
def test_point_cloud_dots_land_on_the_subject_in_every_camera(converted, synthetic_config, tile_width):
    dataset = open_sequence(converted, 388)
    timestep = int(dataset[schema.TIMESTEP].values[1])
    overlay = overlay_points(dataset, timestep)
    assert overlay is not None and overlay.description.startswith("point cloud")
    sheet = contact_sheet(dataset, timestep, overlay, tile_width=tile_width, dot_radius=0)
    assert len(sheet.tiles) == len(catalogue.SERIALS)
    for tile in sheet.tiles:
        assert tile.factor == (1 if tile_width == 275 else 2)
        alpha = truth_alpha(synthetic_config, tile.serial, 1)
        if tile.has_video:  # the stored alpha is what the picture shows
            alpha = dataset[schema.ALPHA].sel({schema.SERIAL: tile.serial, schema.TIMESTEP: timestep}).values
        fraction, dots = fraction_on_subject(tile_pixels(sheet.pixels, tile), alpha, tile)
        assert dots >= 50 and fraction > 0.95, (tile.serial, dots, fraction)
    shifted = Overlay(overlay.points + [0.06, 0.0, 0.0], "shifted")
    moved = contact_sheet(dataset, timestep, shifted, tile_width=tile_width, dot_radius=0)
    fractions = [
        fraction_on_subject(tile_pixels(moved.pixels, t), truth_alpha(synthetic_config, t.serial, 1), t)[0]
        for t in moved.tiles[:4]
    ]
    assert min(fractions) < 0.85, "points 6 cm to the side must leave the subject"


def test_hold_out_tiles_are_framed_in_red_and_black_and_train_tiles_show_the_frame(converted):
    dataset = open_sequence(converted, 388)
    timestep = int(dataset[schema.TIMESTEP].values[0])
    sheet = contact_sheet(dataset, timestep, None)
    hold_out = {tile.serial for tile in sheet.tiles if tile.split == "test"}
    assert hold_out == set(catalogue.NVS_HOLD_OUT_SERIALS)
    for tile in sheet.tiles:
        ring, view = border_ring(sheet.pixels, tile), tile_pixels(sheet.pixels, tile)
        assert not dot_mask(view).any()
        if tile.serial in hold_out:
            assert not tile.has_video and (ring == HOLD_OUT_COLOUR).all() and (view == 0).all()
        else:
            assert tile.has_video and not (ring == HOLD_OUT_COLOUR).all(axis=-1).any()
            stored = dataset[schema.IMAGES].sel({schema.SERIAL: tile.serial, schema.TIMESTEP: timestep}).values
            np.testing.assert_array_equal(view, stored)
    captions = [label for label in sheet.labels if label.text.endswith("hold-out")]
    assert sorted(label.text.split()[0] for label in captions) == sorted(hold_out)
    assert all(label.colour == (255, 255, 255) for label in captions)  # white on a red strip
    for label in captions:
        strip = sheet.pixels[label.y + 1 : label.y + 4, label.x : label.x + 20]
        assert (strip == HOLD_OUT_COLOUR).all()
    assert len({label.size for label in sheet.labels[:-1] if label.text != "no video"}) == 1  # one caption size


def test_shrunk_tiles_are_block_averages(converted):
    dataset = open_sequence(converted, 388)
    sheet = contact_sheet(dataset, 0, None, tile_width=40)
    tile = next(t for t in sheet.tiles if t.has_video)
    assert tile.factor == 3 and (tile.height, tile.width) == (160 // 3, 110 // 3)
    frame = dataset[schema.IMAGES].sel({schema.SERIAL: tile.serial, schema.TIMESTEP: 0}).values.astype(np.float64)
    expected = frame[: 53 * 3, : 36 * 3].reshape(53, 3, 36, 3, 3).mean(axis=(1, 3)).round()
    np.testing.assert_array_equal(tile_pixels(sheet.pixels, tile), expected)


def test_small_frames_are_enlarged_and_every_caption_and_the_title_stay_readable(converted):
    dataset = open_sequence(converted, *MONO_TRAIN)
    timestep = int(dataset[schema.TIMESTEP].values[0])
    sheet = contact_sheet(dataset, timestep, None)
    width = int(dataset.attrs[schema.WIDTH_ATTR])
    assert width < MIN_TILE_WIDTH  # the tiny synthetic mono frames
    for tile in sheet.tiles:
        assert tile.zoom == -(-MIN_TILE_WIDTH // width) and tile.width >= MIN_TILE_WIDTH
        if tile.has_video:
            stored = dataset[schema.IMAGES].sel({schema.SERIAL: tile.serial, schema.TIMESTEP: timestep}).values
            np.testing.assert_array_equal(tile_pixels(sheet.pixels, tile), stored.repeat(tile.zoom, 0).repeat(tile.zoom, 1))
    *captions, title = sheet.labels
    assert title.size == TITLE_FONT_SIZE and title.text.startswith("mono_flame_avatar/393/EXP-1-head")
    text_width = [0.6 * len(label.text) * label.size * DPI / 72 for label in sheet.labels]
    assert text_width[-1] <= sheet.pixels.shape[1]  # the title is not cut
    assert all(label.size >= CAPTION_FONT_SIZE - 0.05 for label in captions)
    spans = sorted((label.y, label.x, label.x + w) for label, w in zip(captions, text_width))
    for (y0, _, end), (y1, start, _) in zip(spans, spans[1:]):
        assert y0 != y1 or end <= start, "captions of one row overlap"


def test_preview_cli_writes_the_captioned_sheet(converted, tmp_path):
    output = tmp_path / "sheet.png"
    result = CliRunner().invoke(cli, ["preview", str(converted), "-p", "388", "-t", "3", "-o", str(output)])
    assert result.exit_code == 0, result.output
    picture = imagecodecs.png_decode(output.read_bytes())
    dataset = open_sequence(converted, 388)
    sheet = contact_sheet(dataset, 3, overlay_points(dataset, 3))
    assert picture.shape == sheet.pixels.shape
    for tile in sheet.tiles:  # frames come through the caption drawing untouched; empty ones say "no video"
        if tile.has_video:
            np.testing.assert_array_equal(tile_pixels(picture, tile), tile_pixels(sheet.pixels, tile))
        else:
            changed = (tile_pixels(picture, tile) != tile_pixels(sheet.pixels, tile)).any(axis=-1)
            assert changed[:14].sum() > 20 and not changed[14:].any()
    first = sheet.tiles[0]
    caption = picture[first.top - BORDER - 14 : first.top - BORDER, first.left : first.left + 80]
    assert (caption.max(axis=-1) > 150).sum() > 30, "the caption text is drawn above the tile"
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]


def test_mono_preview_with_a_flame_folder_draws_the_evaluated_mesh_on_the_subject(converted, standin_dir, tmp_path):
    dataset = open_sequence(converted, MONO_TRAIN[0])
    assert dataset.attrs["sequence"] == MONO_TRAIN[1], "the first mono sequence with frames is the default"
    timestep = int(dataset[schema.TIMESTEP].values[2])
    assert overlay_points(dataset, timestep) is None  # no stored vertices, no point clouds, no model given
    overlay = overlay_points(dataset, timestep, standin_dir)
    assert "NOT FLAME" in overlay.description and len(overlay.points) == 1500
    sheet = contact_sheet(dataset, timestep, overlay, dot_radius=0)
    train = next(tile for tile in sheet.tiles if tile.serial == catalogue.MONO_TRAIN_SERIAL)
    alpha = dataset[schema.ALPHA].sel({schema.SERIAL: train.serial, schema.TIMESTEP: timestep}).values
    fraction, dots = fraction_on_subject(tile_pixels(sheet.pixels, train), alpha, train)
    assert dots >= 100 and fraction > 0.95
    output = tmp_path / "mono.png"
    result = CliRunner().invoke(cli, ["preview", str(converted), "-p", "393", "-t", str(timestep), "--flame-dir",
                                      str(standin_dir), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert dot_mask(imagecodecs.png_decode(output.read_bytes())).sum() > 100


@pytest.mark.parametrize("participant", [388, 393])
def test_rig_cameras_are_numbered_without_overlap_and_the_key_names_every_camera(converted, participant):
    from nersemble_zarr.preview.rig import rig_figure

    dataset = open_sequence(converted, participant)
    figure = rig_figure(dataset)
    renderer = figure.canvas.get_renderer()
    numbers = figure.axes[0].texts
    assert [text.get_text() for text in numbers] == [str(n) for n in range(dataset.sizes[schema.SERIAL])]
    boxes = [text.get_window_extent(renderer) for text in numbers]
    for i, first in enumerate(boxes):
        for second in boxes[i + 1:]:
            assert not first.overlaps(second), "two camera labels overlap"
    key = [text.get_text() for text in figure.texts]
    assert [line.split()[1] for line in key] == [str(s) for s in dataset[schema.SERIAL].values]
    assert [line.endswith("hold-out") for line in key] == list(dataset[schema.SPLIT].values == "test")
    key_boxes = [text.get_window_extent(renderer) for text in figure.texts]
    assert all(box.x1 <= figure.bbox.width for box in key_boxes)
    assert not any(a.overlaps(b) for a, b in zip(key_boxes, key_boxes[1:]))


def test_stored_vertices_are_preferred_to_evaluating_the_model(converted, standin_dir, tmp_path):
    meshed = tmp_path / "meshed.zarr"
    shutil.copytree(converted, meshed)
    result = CliRunner().invoke(cli, ["meshes", str(meshed), "-s", MONO_TRAIN[1], "--flame-dir", str(standin_dir),
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    dataset = open_sequence(meshed, MONO_TRAIN[0], MONO_TRAIN[1])
    timestep = int(dataset[schema.TIMESTEP].values[-1])
    overlay = overlay_points(dataset, timestep, max_points=10_000)
    assert overlay.description == "FLAME mesh (5023 stored vertices)"
    np.testing.assert_array_equal(overlay.points, dataset[schema.VERTICES].sel({schema.TIMESTEP: timestep}).values)


@pytest.mark.parametrize("participant", [388, 393])
def test_rig_plot_has_red_hold_out_and_blue_train_frustums(converted, tmp_path, participant):
    output = tmp_path / "rig.png"
    result = CliRunner().invoke(cli, ["preview-rig", str(converted), "-p", str(participant), "-o", str(output)])
    assert result.exit_code == 0, result.output
    picture = imagecodecs.png_decode(output.read_bytes()).astype(int)
    red = (picture[..., 0] > 200) & (picture[..., 1] < 80) & (picture[..., 2] < 80)
    blue = (picture[..., 2] > 150) & (picture[..., 0] < 80)
    assert red.sum() > 200 and blue.sum() > 100


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["-p", "388", "-t", "4"], 2, "Timestep 4 is not in nvs/388/GLASSES"),
        (["-p", "999"], 2, "Unknown participant 999"),
        (["-p", "393", "-s", "NOPE"], 2, "Participant 393 of mono_flame_avatar has no sequence 'NOPE'"),
        (["-p", "388", "-s", "FREE"], 2, "Participant 388 of nvs has no sequence 'FREE'; its sequences: GLASSES"),
    ],
)
def test_bad_requests_are_one_line_errors_and_write_nothing(converted, tmp_path, args, code, message):
    output = tmp_path / "x.png"
    result = CliRunner().invoke(cli, ["preview", str(converted), *args, "-o", str(output)])
    assert result.exit_code == code and message in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_missing_store_is_a_one_line_error(tmp_path):
    missing, output = tmp_path / "none.zarr", tmp_path / "r.png"
    result = CliRunner().invoke(cli, ["preview-rig", str(missing), "-p", "388", "-o", str(output)])
    assert result.exit_code == 2 and "is not a zarr store" in result.output  # a missing input path: a usage error
