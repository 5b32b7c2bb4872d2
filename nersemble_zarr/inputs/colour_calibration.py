"""``color_calibration.json`` of a v2 dataset participant: per camera serial one 3 x terms colour correction matrix.

Read with the bounded JSON parser; every matrix must be a list of 3 rows of JSON numbers (a string such as
"1.5" is refused, not converted) with a ``terms`` that Cheung 2004 defines and finite values, the checks
:func:`nersemble_zarr.colour.check_matrix` makes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import catalogue
from ..colour import matrix_problem
from ..errors import shown
from .files import read_limited
from .jsontext import MAX_JSON_BYTES, kind_of, parse_json
from .origin import Origin


def read_colour_calibration(path: Path) -> dict[str, np.ndarray]:
    """Camera serial -> float64 (3, terms) matrix of a ``color_calibration.json``, in the file's order (the order
    of the official ``load_color_calibration``)."""
    origin = Origin.local(path)
    return parse_colour_calibration(read_limited(path, origin, MAX_JSON_BYTES), origin)


def parse_colour_calibration(raw: bytes, origin: Origin) -> dict[str, np.ndarray]:
    """``read_colour_calibration`` of a ``color_calibration.json``'s bytes (kept elsewhere, e.g. in a store)."""
    document = parse_json(raw, origin)
    if not isinstance(document, dict):
        raise origin.error(f"should hold a JSON object of camera serials, found {kind_of(document)}")
    unknown = sorted(set(document) - set(catalogue.SERIALS))
    if unknown:
        raise origin.error(f"names unknown camera serial {shown(unknown[0])}")
    matrices = {}
    for serial, value in document.items():
        rows = value if isinstance(value, list) and all(isinstance(row, list) for row in value) else None
        if rows is None or not all(_is_number(entry) for row in rows for entry in row):
            raise origin.error(f"has a non-numeric colour correction matrix for camera {serial}; expected 3 rows "
                               "of numbers")
        if len({len(row) for row in rows}) > 1:
            raise origin.error(f"has rows of different lengths in the colour correction matrix of camera {serial}")
        problem = matrix_problem(rows)
        if problem is not None:
            raise origin.error(f"has a colour correction matrix for camera {serial} that {problem}")
        matrices[serial] = np.array(rows, dtype=np.float64)
    if not matrices:
        raise origin.error("holds no camera's colour correction matrix")
    return matrices


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
