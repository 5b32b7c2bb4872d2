"""Numbers as people read them."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """A byte count with a binary unit: 1536 -> '1.5 KiB', 1023 -> '1023 B'."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    step = 0
    while abs(n) >= 1024 and step < len(units) - 1:
        n /= 1024
        step += 1
    return f"{n:.0f} B" if step == 0 else f"{n:.1f} {units[step]}"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun in the right number: "1 sequence", "2 sequences"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def listed(names: list[str], limit: int = 8) -> str:
    """Names joined by commas, the first ``limit`` only, then "and N more"."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"
