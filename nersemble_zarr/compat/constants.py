"""The official toolkit's ``nersemble_benchmark.constants`` names, built from this project's catalogue.

Lists stay lists and the SVFR keys a dict of lists of tuples, as the official module has them.
"""

from __future__ import annotations


from .. import catalogue

SERIALS = list(catalogue.SERIALS)

ASSETS = {
    "nvs": {
        "per_person": {"calibration": "{p_id:03d}/calibration/camera_params.json"},
        "per_cam": {
            "images": "{p_id:03d}/sequences/{seq_name:}/images/cam_{serial:}.mp4",
            "alpha_maps": "{p_id:03d}/sequences/{seq_name:}/alpha_maps/cam_{serial:}.mp4",
        },
        "per_timestep": {"pointclouds": "{p_id:03d}/sequences/{seq_name:}/pointclouds/frame_{timestep:05d}.pcd"},
    },
    "mono_flame_avatar": {
        "per_person": {"calibration": "{p_id:03d}/calibration/camera_params.json"},
        "per_sequence": {
            "flame2023_tracking": "{p_id:03d}/sequences/{seq_name:}/tracking/" + catalogue.TRACKING_FILE_V1,
            "flame2023_tracking_v2": "{p_id:03d}/sequences/{seq_name:}/tracking/" + catalogue.TRACKING_FILE,
        },
        "per_cam": {
            "images": "{p_id:03d}/sequences/{seq_name:}/images/cam_{serial:}.mp4",
            "alpha_maps": "{p_id:03d}/sequences/{seq_name:}/alpha_maps/cam_{serial:}.mp4",
        },
        "test_assets": ["flame2023_tracking_v2"],
    },
    "svfr": {"per_image": {"images": "{p_id:03d}/{seq_name:}_{timestep:}_{serial:}/rgb.png"}},
}
OPTIONAL_ASSETS = ["flame2023_tracking"]
FLAME_TRACKING_CURRENT_VERSION = 2
FLAME_TRACKING_VERSION_MAPPING = {1: "flame2023_tracking", 2: "flame2023_tracking_v2"}

# ---------------------------------------------------------------- NVS
BENCHMARK_NVS_IDS_AND_SEQUENCES = list(catalogue.NVS_SEQUENCES.items())
BENCHMARK_NVS_HOLD_OUT_SERIALS = list(catalogue.NVS_HOLD_OUT_SERIALS)
BENCHMARK_NVS_TRAIN_SERIALS = list(catalogue.NVS_TRAIN_SERIALS)

# ---------------------------------------------------------------- Mono FLAME avatar
BENCHMARK_MONO_FLAME_AVATAR_IDS = list(catalogue.MONO_PARTICIPANTS)
BENCHMARK_MONO_FLAME_AVATAR_SEQUENCES_TRAIN = list(catalogue.MONO_TRAIN_SEQUENCES)
BENCHMARK_MONO_FLAME_AVATAR_SEQUENCES_TEST = list(catalogue.MONO_TEST_SEQUENCES)
BENCHMARK_MONO_FLAME_AVATAR_SEQUENCES = BENCHMARK_MONO_FLAME_AVATAR_SEQUENCES_TRAIN + BENCHMARK_MONO_FLAME_AVATAR_SEQUENCES_TEST
BENCHMARK_MONO_FLAME_AVATAR_TRAIN_SERIAL = catalogue.MONO_TRAIN_SERIAL
BENCHMARK_MONO_FLAME_AVATAR_HOLD_OUT_SERIALS = list(catalogue.MONO_HOLD_OUT_SERIALS)
BENCHMARK_MONO_FLAME_AVATAR_SERIALS = [BENCHMARK_MONO_FLAME_AVATAR_TRAIN_SERIAL] + BENCHMARK_MONO_FLAME_AVATAR_HOLD_OUT_SERIALS


# ---------------------------------------------------------------- Single-view 3D face reconstruction
def _svfr_image_keys() -> dict[int, list[tuple[str, int, str]]]:
    """participant -> [(sequence, timestep, serial)], from the package's copy of the official list."""
    return {participant: [tuple(key) for key in keys] for participant, keys in catalogue.svfr_image_keys().items()}


BENCHMARK_SVFR_IMAGE_KEYS = _svfr_image_keys()
BENCHMARK_SVFR_IDS = list(BENCHMARK_SVFR_IMAGE_KEYS)
