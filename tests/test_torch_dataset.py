"""FrameDataset / make_dataloader: items equal the store, every frame once per epoch, worker processes."""

from __future__ import annotations

import pickle
import shutil
from collections import Counter

import numpy as np
import pytest
import torch

from nersemble_zarr import catalogue, schema
from nersemble_zarr import store as store_module
from nersemble_zarr.errors import ConfigError, StoreError
from nersemble_zarr.torch_dataset import FLAME_PARAMS, FrameDataset, make_dataloader


def unbatch(batch: dict) -> list[dict]:
    """The items of a collated batch (nested dicts of tensors with a leading batch dimension)."""
    def pick(value, i):
        return {k: v[i] for k, v in value.items()} if isinstance(value, dict) else value[i]

    return [{key: pick(value, i) for key, value in batch.items()} for i in range(len(batch["timestep"]))]


def check_item_equals_store(item: dict, dataset: FrameDataset, tree) -> tuple[str, str, int]:
    sequence = dataset.sequences[int(item["sequence_index"])]
    serial = sequence.serials[int(item["serial_index"])]
    timestep = int(item["timestep"])
    ds = tree[sequence.group].to_dataset().sel({schema.SERIAL: serial, schema.TIMESTEP: timestep})
    image = (item["image"] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(image, ds[schema.IMAGES].values)
    np.testing.assert_array_equal((item["alpha"][0] * 255).round().to(torch.uint8).numpy(), ds[schema.ALPHA].values)
    np.testing.assert_array_equal(item["world_2_cam"].numpy(), ds[schema.WORLD_2_CAM].values.astype(np.float32))
    np.testing.assert_array_equal(item["intrinsics"].numpy(), ds[schema.INTRINSICS].values.astype(np.float32))
    assert ds[schema.SPLIT].item() == "train"
    return sequence.group, serial, timestep


def test_dataloader_with_two_worker_processes_gives_every_train_frame_once_per_epoch(converted):
    loader = make_dataloader(converted, "nvs", batch_size=5, num_workers=2, seed=0, multiprocessing_context="fork")
    dataset = loader.dataset
    tree = store_module.open(converted)
    nvs = store_module.sequence(tree, "nvs", 388)
    expected = Counter(
        ("nvs/388/GLASSES", serial, int(t)) for serial in catalogue.NVS_TRAIN_SERIALS for t in nvs.timestep.values
    )
    assert len(dataset) == sum(expected.values()) == 13 * 6
    orders = []
    for _ in range(2):
        seen = Counter()
        order = []
        for batch in loader:
            assert batch["image"].shape[1:] == (3, 160, 110) and batch["image"].dtype == torch.float32
            assert batch["alpha"].shape[1:] == (1, 160, 110)
            for item in unbatch(batch):
                key = check_item_equals_store(item, dataset, tree)
                seen[key] += 1
                order.append(key)
        assert seen == expected
        orders.append(order)
    assert orders[0] != orders[1], "shuffling draws a new order every epoch"
    assert orders[0] != sorted(orders[0]), "frames come in random order"
    assert dataset._readers == {}, "frames were read in the worker processes, not in the main one"


def test_the_same_seed_gives_the_same_order(converted):
    def order(seed: int) -> list[list[int]]:
        loader = make_dataloader(converted, "nvs", batch_size=4, seed=seed)
        return [batch["timestep"].tolist() + batch["serial_index"].tolist() for batch in loader]

    assert order(3) == order(3) != order(4)


def test_mono_items_carry_the_flame_parameters_of_their_timestep(converted):
    dataset = FrameDataset(converted, "mono_flame_avatar", dtype=torch.uint8)
    assert [s.group for s in dataset.sequences] == ["mono_flame_avatar/393/EXP-1-head"]  # FREE has no frames
    tree = store_module.open(converted)
    ds = store_module.sequence(tree, "mono_flame_avatar", 393, "EXP-1-head")
    assert len(dataset) == ds.sizes[schema.TIMESTEP]
    for index in range(len(dataset)):
        item = dataset[index]
        group, serial, timestep = dataset.item_key(index)
        assert serial == catalogue.MONO_TRAIN_SERIAL and int(item["timestep"]) == timestep
        frame = ds.sel({schema.SERIAL: serial, schema.TIMESTEP: timestep})
        assert item["image"].dtype == torch.uint8
        np.testing.assert_array_equal(item["image"].permute(1, 2, 0).numpy(), frame[schema.IMAGES].values)
        assert set(item["flame"]) == set(FLAME_PARAMS)
        for name, value in item["flame"].items():
            np.testing.assert_array_equal(value.numpy(), frame[name].values.astype(np.float32), err_msg=name)
    batch = next(iter(make_dataloader(converted, "mono_flame_avatar", batch_size=3, shuffle=False)))
    assert batch["flame"]["expression"].shape == (3, schema.FLAME_N_EXPRESSION)
    assert batch["flame"]["shape"].shape == (3, schema.FLAME_N_SHAPE)


def test_serials_narrow_the_cameras(converted):
    chosen = catalogue.NVS_TRAIN_SERIALS[:2]
    dataset = FrameDataset(converted, "nvs", serials=chosen)
    assert {dataset.item_key(i)[1] for i in range(len(dataset))} == set(chosen)
    assert len(dataset) == 2 * 6


def test_a_resolution_level_gives_its_frames_and_rescaled_intrinsics(converted, tmp_path):
    from nersemble_zarr.levels import downsample

    with pytest.raises(StoreError, match="no resolution level 2 of nvs/388/GLASSES"):
        FrameDataset(converted, "nvs", level=2)
    leveled = tmp_path / "leveled.zarr"
    shutil.copytree(converted, leveled)
    downsample(leveled, [2], participants=[388], workers=2)
    dataset = FrameDataset(leveled, "nvs", level=2, dtype=torch.uint8)
    assert [s.group for s in dataset.sequences] == ["level_2/nvs/388/GLASSES"] and len(dataset) == 13 * 6
    level = store_module.open(leveled)["level_2/nvs/388/GLASSES"].to_dataset()
    for index in (0, len(dataset) - 1):
        item = dataset[index]
        _, serial, timestep = dataset.item_key(index)
        frame = level.sel({schema.SERIAL: serial, schema.TIMESTEP: timestep})
        assert item["image"].shape == (3, 80, 55)
        np.testing.assert_array_equal(item["image"].permute(1, 2, 0).numpy(), frame[schema.IMAGES].values)
        np.testing.assert_array_equal(item["alpha"][0].numpy(), frame[schema.ALPHA].values)
        np.testing.assert_array_equal(item["intrinsics"].numpy(), frame[schema.INTRINSICS].values.astype(np.float32))
    assert not np.array_equal(dataset.sequences[0].intrinsics, FrameDataset(leveled, "nvs").sequences[0].intrinsics)


def test_pickled_dataset_holds_no_open_store_and_reads_after_unpickling(converted):
    dataset = FrameDataset(converted, "nvs")
    first = dataset[0]
    assert dataset._readers, "reading an item opens the arrays in this process"
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._readers == {}
    assert torch.equal(copy[0]["image"], first["image"])


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"split": "validation"}, ConfigError, "Split 'validation'"),
        ({"split": "test"}, StoreError, "no stored frames"),
        ({"serials": ["123"]}, StoreError, "Camera '123'"),
        ({"participants": [422]}, StoreError, "participant 422"),
        ({"sequences": ["HAIR"]}, StoreError, "'HAIR'"),
        ({"level": 0}, ConfigError, "Resolution level 0"),
    ],
)
def test_bad_selections_are_one_sentence_errors(converted, options, error, message):
    with pytest.raises(error, match=message):
        FrameDataset(converted, "nvs", **options)


def test_a_missing_store_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="not a zarr store"):
        FrameDataset(tmp_path / "nothing.zarr", "nvs")
