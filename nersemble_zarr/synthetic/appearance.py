"""The synthetic subject's colours: skin with smooth blotches, hair, eyes that follow the gaze, brows that
follow the expression and a mouth that opens with the jaw, painted on the head ellipsoid.

Colours are a function of the surface direction in model space, so they move rigidly with the head, and of
one frame's FLAME parameters, so faces change over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .head import HEAD_CENTER, HEAD_RADII
from .scene import rng_for

SKIN_TONES = np.array([[0.88, 0.68, 0.56], [0.78, 0.57, 0.44], [0.62, 0.43, 0.31], [0.93, 0.76, 0.66]])
HAIR_COLOURS = np.array([[0.16, 0.10, 0.07], [0.35, 0.22, 0.12], [0.06, 0.05, 0.05], [0.55, 0.40, 0.22]])
IRIS_COLOURS = np.array([[0.25, 0.15, 0.08], [0.20, 0.35, 0.55], [0.25, 0.40, 0.25]])
SCLERA = np.array([0.92, 0.91, 0.88])
LIPS = np.array([0.70, 0.30, 0.32])
MOUTH_INSIDE = np.array([0.18, 0.05, 0.06])
EDGE = 0.02  # width of the soft edges between regions, in radians


@dataclass(frozen=True)
class Appearance:
    """One participant's look: base colours, hairline height and the waves of the skin's blotches."""

    skin: np.ndarray
    hair: np.ndarray
    iris: np.ndarray
    hairline: float
    wave_vectors: np.ndarray  # (K, 3)
    wave_phases: np.ndarray  # (K,)

    @classmethod
    def of(cls, seed: int, benchmark: str, participant: int) -> "Appearance":
        rng = rng_for(seed, "appearance", benchmark, participant)
        return cls(
            skin=SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.95, 1.05, 3),
            hair=HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))],
            iris=IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))],
            hairline=rng.uniform(0.4, 0.55),
            wave_vectors=rng.normal(scale=4.0, size=(6, 3)),
            wave_phases=rng.uniform(0, 2 * np.pi, 6),
        )


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _inside(longitude: np.ndarray, latitude: np.ndarray, centre: tuple, radii: tuple) -> np.ndarray:
    """Soft mask (0..1) of an ellipse in (longitude, latitude) with soft edges about EDGE wide."""
    distance = np.hypot((longitude - centre[0]) / radii[0], (latitude - centre[1]) / radii[1])
    edge = EDGE / min(radii)
    return 1.0 - _smoothstep(1.0 - edge, 1.0 + edge, distance)


def _near(longitude: np.ndarray, latitude: np.ndarray, centre: tuple, radii: tuple) -> np.ndarray:
    """Indices of the points inside an ellipse's bounding box, soft edge included (painting only these is fast)."""
    reach = 1.0 + EDGE / min(radii)
    return np.flatnonzero(
        (np.abs(longitude - centre[0]) < radii[0] * reach) & (np.abs(latitude - centre[1]) < radii[1] * reach)
    )


def _blend(colour: np.ndarray, mask: np.ndarray, paint: np.ndarray) -> np.ndarray:
    return colour + (paint - colour) * mask[:, None]


def _paint_ellipse(
    colour: np.ndarray, longitude: np.ndarray, latitude: np.ndarray, centre: tuple, radii: tuple,
    paint: np.ndarray, strength: float = 1.0,
) -> None:
    """Blend ``paint`` into ``colour`` (in place) inside a soft ellipse, at most ``strength`` opaque."""
    near = _near(longitude, latitude, centre, radii)
    mask = strength * _inside(longitude[near], latitude[near], centre, radii)
    colour[near] = _blend(colour[near], mask, paint)


def _paint_eye(
    colour: np.ndarray, longitude: np.ndarray, latitude: np.ndarray, centre: tuple, gaze: np.ndarray, iris: np.ndarray
) -> None:
    """White of the eye with an iris and pupil moved by the gaze, clipped to the eye's outline."""
    near = _near(longitude, latitude, centre, (0.13, 0.06))
    lon, lat = longitude[near], latitude[near]
    iris_centre = (centre[0] + gaze[0], centre[1] + gaze[1])
    outline = _inside(lon, lat, centre, (0.12, 0.055))
    painted = _blend(colour[near], _inside(lon, lat, centre, (0.13, 0.06)), SCLERA)
    painted = _blend(painted, _inside(lon, lat, iris_centre, (0.05, 0.05)) * outline, iris)
    colour[near] = _blend(painted, _inside(lon, lat, iris_centre, (0.022, 0.022)) * outline, np.full(3, 0.02))


def albedo(
    points: np.ndarray, appearance: Appearance, expression: np.ndarray, jaw: np.ndarray, eyes: np.ndarray
) -> np.ndarray:
    """RGB colours in [0, 1] (N, 3) of model-space surface points (N, 3) for one frame's FLAME parameters."""
    direction = (points - HEAD_CENTER) / HEAD_RADII
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    longitude = np.arctan2(direction[:, 0], direction[:, 2])  # 0 at the nose, > 0 towards the subject's left
    latitude = np.arcsin(np.clip(direction[:, 1], -1, 1))

    blotches = np.sin(direction @ appearance.wave_vectors.T + appearance.wave_phases).mean(axis=1)
    colour = appearance.skin[None, :] * (1.0 + 0.12 * blotches[:, None])
    for side in (-1, 1):
        _paint_ellipse(colour, longitude, latitude, (side * 0.55, -0.2), (0.2, 0.15), np.array([0.85, 0.45, 0.45]), 0.3)
    _paint_ellipse(colour, longitude, latitude, (0.0, -0.12), (0.07, 0.035), np.zeros(3), 0.25)  # nose shadow

    smile = float(expression[1])
    mouth_height = 0.03 + 0.3 * max(float(jaw[0]), 0.0)
    mouth_centre, mouth_radii = (0.0, -0.42), (0.22 * (1 + 0.15 * smile), mouth_height)
    _paint_ellipse(colour, longitude, latitude, mouth_centre, mouth_radii, LIPS)
    inner = (mouth_radii[0] * 0.8, max(mouth_height - 0.03, 0.005))
    _paint_ellipse(colour, longitude, latitude, mouth_centre, inner, MOUTH_INSIDE)

    gaze = np.array([eyes[1], -eyes[0]]) * 0.4
    brow_lift = 0.04 * float(np.tanh(expression[0]))
    for side in (-1, 1):
        _paint_eye(colour, longitude, latitude, (side * 0.33, 0.15), gaze, appearance.iris)
        _paint_ellipse(colour, longitude, latitude, (side * 0.33, 0.27 + brow_lift), (0.15, 0.025), appearance.hair)

    # Hairline: high at the forehead, down to the nape at the back of the head.
    hairline = appearance.hairline + 0.06 * np.cos(3 * longitude) - 0.9 * _smoothstep(0.9, 2.2, np.abs(longitude))
    hair = np.flatnonzero(latitude > hairline - EDGE)
    strands = 0.85 + 0.15 * np.sin(40 * longitude[hair] + 6 * latitude[hair])
    mask = _smoothstep(-EDGE, EDGE, latitude[hair] - hairline[hair])
    colour[hair] = _blend(colour[hair], mask, appearance.hair[None, :] * strands[:, None])
    return np.clip(colour, 0.0, 1.0)
