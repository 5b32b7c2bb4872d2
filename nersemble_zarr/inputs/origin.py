"""How an error message names an input file, and what it tells the user to do about a bad one."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import InputDataError


@dataclass(frozen=True)
class Origin:
    """The subject of an error sentence (``The file /x/camera_params.json``) and its advice."""

    label: str
    advice: str = "fetch it again"

    @classmethod
    def local(cls, path: str | os.PathLike, kind: str = "file") -> "Origin":
        """A file below ROOT, e.g. ``Origin.local(path, "tracking file")``."""
        return cls(f"The {kind} {os.fspath(path)}")

    def error(self, problem: str) -> InputDataError:
        """``{label} {problem}; {advice}.`` as an InputDataError."""
        return InputDataError(f"{self.label} {problem}; {self.advice}.")
