"""Check the store's own attributes (root and group) against their expected types when the store is opened.

Every command reads these attributes (the format version, the benchmarks, a sequence's cameras with video and
frame size); a store whose attributes were edited by hand or damaged gets one StoreError naming the store, the
attribute and what it holds, instead of a traceback wherever the value is first used.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

from . import schema
from .errors import StoreError, shown
from .sources import SOURCES


def _integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _positive_integer(value: Any) -> bool:
    return _integer(value) and value > 0


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


SOURCE_NAMES = tuple(SOURCES)  # what a store's groups can come from


def _benchmarks(value: Any) -> bool:
    return _texts(value) and all(item in SOURCE_NAMES for item in value)


# attribute -> (test, what it must be); attributes absent are not checked (each reader says what it misses)
ROOT_ATTRS: dict[str, tuple[Callable[[Any], bool], str]] = {
    schema.FORMAT_ATTR: (_positive_integer, "a positive integer"),
    schema.CREATED_BY_ATTR: (_text, "a text"),
    schema.BENCHMARKS_ATTR: (_benchmarks, f"a list of benchmark names ({', '.join(SOURCE_NAMES)})"),
}
GROUP_ATTRS: dict[str, tuple[Callable[[Any], bool], str]] = {
    schema.BENCHMARK_ATTR: (lambda value: value in SOURCE_NAMES, "a benchmark name"),
    schema.PARTICIPANT_ATTR: (_integer, "an integer"),
    schema.SEQUENCE_ATTR: (_text, "a text"),
    schema.HEIGHT_ATTR: (_positive_integer, "a positive integer"),
    schema.WIDTH_ATTR: (_positive_integer, "a positive integer"),
    schema.FRAME_CODEC_ATTR: (_text, "a codec name"),
    schema.VIDEO_SERIALS_ATTR: (_texts, "a list of camera serials"),
    schema.LEVEL_ATTR: (_positive_integer, "a positive integer"),
    schema.CONVERTED_ATTR: (_flag, "true or false"),
    schema.SKELETON_ATTR: (_flag, "true or false"),
    schema.VERTICES_COMPLETE_ATTR: (_flag, "true or false"),
    schema.COLOUR_CORRECTED_ATTR: (_flag, "true or false"),
    schema.CALIBRATION_JSON_ATTR: (_text, "the text of a camera_params.json"),
    schema.COLOUR_CALIBRATION_JSON_ATTR: (_text, "the text of a color_calibration.json"),
}


def check_root_attrs(store: str, attrs: Mapping[str, Any]) -> None:
    """Raise a StoreError naming the first root attribute of ``store`` of the wrong type."""
    _check(f"The store {store}", attrs, ROOT_ATTRS)


def check_group_attrs(store: str, group: str, attrs: Mapping[str, Any]) -> None:
    """Raise a StoreError naming the first attribute of the group ``group`` of ``store`` of the wrong type."""
    _check(f"The group {group} of the store {store}", attrs, GROUP_ATTRS)


def _check(where: str, attrs: Mapping[str, Any], expected: dict[str, tuple[Callable[[Any], bool], str]]) -> None:
    for name, (test, what) in expected.items():
        if name in attrs and not test(attrs[name]):
            raise StoreError(
                f"{where} is damaged: its attribute {name!r} holds {shown(attrs[name])}, not {what}; "
                "convert into a new store, or restore the attribute."
            )
