"""Walking a user's predictions folder: visible entries in name order, and never a symbolic link below it.

A link inside PREDICTIONS can lead anywhere on disk (another user's files, a folder outside the predictions):
the folder given is read, not what its entries point to. The folder itself may be a link.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SubmissionError


def refuse_link(path: Path) -> Path:
    """``path`` itself, or a SubmissionError when it is a symbolic link (to a file, a folder or nothing)."""
    if path.is_symlink():
        raise SubmissionError(
            f"{path} is a symbolic link; predictions are read only from the files and folders inside the folder "
            "given (replace the link with a copy)."
        )
    return path


def visible_entries(folder: Path) -> list[Path]:
    """The entries of ``folder`` in name order, hidden ones (``.DS_Store``) left out, none a symbolic link."""
    return sorted(refuse_link(path) for path in folder.iterdir() if not path.name.startswith("."))
