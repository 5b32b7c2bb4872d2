"""A JSON parser with explicit limits, for every JSON file the project reads (the benchmark's metadata.json and
camera_params.json, validation splits, transforms files, export settings, the package's own data).

Python's json module recurses once per nesting level (a 100,000-deep document raises RecursionError) and
turns any run of digits into an int (thousands of digits, or 10**400, which no float holds). Here the
nesting depth is measured first, without recursion, and numbers longer than the benchmark ever writes are
refused while parsing, as are objects that repeat a key. NaN and Infinity literals are kept: the readers
check the ranges of the numbers they use.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import shown
from .origin import Origin

MAX_JSON_BYTES = 16 * 2**20
TRANSFORMS_MAX_BYTES = 1 << 30  # transforms*.json list every view: 16 cameras x thousands of frames x ~1 KiB
MAX_DEPTH = 16
MAX_INTEGER_DIGITS = 20  # int64 has 19
MAX_NUMBER_CHARACTERS = 40  # repr() of any float64 has at most 24

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class _Refused(ValueError):
    """A JSON document beyond a limit; the message ends an error sentence."""


def parse_json(raw: bytes, origin: Origin, limit: int = MAX_JSON_BYTES) -> object:
    """The document in ``raw`` (at most ``limit`` bytes), or one InputDataError naming ``origin`` and the limit it
    broke."""
    if len(raw) > limit:
        raise origin.error(f"is {len(raw)} bytes, more than the {limit} bytes a JSON input may have")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise origin.error(f"is not valid JSON (not UTF-8 text: {error.reason} at byte {error.start})") from None
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise origin.error(f"nests deeper than {MAX_DEPTH} levels ({depth}), which no benchmark file does")
    try:
        return json.loads(text, parse_int=_integer, parse_float=_real, object_pairs_hook=_object)
    except _Refused as error:
        raise origin.error(str(error)) from None
    except ValueError as error:  # json.JSONDecodeError
        raise origin.error(f"is not valid JSON ({error})") from None


def read_json_file(path: Path, origin: Origin, limit: int = MAX_JSON_BYTES) -> object:
    """The document in the file ``path`` of at most ``limit`` bytes, parsed by ``parse_json``; a missing,
    unreadable, oversized or malformed file is one InputDataError naming ``origin``."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except FileNotFoundError:
        raise origin.error("does not exist") from None
    except OSError as error:
        raise origin.error(f"cannot be read ({error.strerror or type(error).__name__})") from None
    if len(raw) > limit:
        raise origin.error(f"is more than the {limit} bytes such a JSON file may have")
    return parse_json(raw, origin, limit)


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in JSON ``text`` (brackets inside strings do not count)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def kind_of(value: object) -> str:
    """What a parsed JSON value is, for a message: 'an object', 'a list', 'a string', 'a number', ..."""
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    names = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _integer(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise _Refused(f"holds a number of {digits} digits; at most {MAX_INTEGER_DIGITS} are accepted")
    return int(text)


def _real(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARACTERS:
        raise _Refused(f"holds a number written with {len(text)} digits; at most {MAX_NUMBER_CHARACTERS} are "
                       "accepted")
    return float(text)


def _object(pairs: list[tuple[str, object]]) -> dict:
    document = dict(pairs)
    if len(document) != len(pairs):
        repeated = next(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise _Refused(f"has the key {shown(repeated)} twice in one object")
    return document
