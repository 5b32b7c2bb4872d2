"""The project's exception hierarchy.

Every error a user can cause is one of these, carrying one sentence that names the file or value,
what was expected, what was found and what to do. The CLI prints that sentence and exits non-zero.
"""

from __future__ import annotations


class NersembleError(Exception):
    """Base class of every error this package raises on purpose.

    Exit codes: 2 for a usage error (the command line names an option value, a participant, sequence,
    timestep or an input path that is not valid or not there), 1 for a runtime failure (a file's content,
    the server, the disk, a lock), as the CLI documents.
    """

    exit_code = 1


class ConfigError(NersembleError):
    """A missing or malformed setting (access URL, option value, FLAME folder)."""

    exit_code = 2


class CatalogueError(NersembleError):
    """An unknown benchmark, participant, sequence, serial, timestep or asset name."""

    exit_code = 2


class LockError(NersembleError):
    """Another run holds the lock of the folder or store this run would write (or the lock cannot be made)."""


class DownloadError(NersembleError):
    """A download that failed for good (HTTP error, truncated body, too many retries)."""


class InputDataError(NersembleError):
    """A fetched file that is missing, truncated, corrupt or of the wrong shape."""


class CorruptVideo(InputDataError):
    """A video file whose data does not decode; ``path`` names it."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"The video {path} is corrupt {detail}.")
        self.path, self.detail = str(path), detail

    def __reduce__(self):  # picklable for dask.distributed workers
        return CorruptVideo, (self.path, self.detail)


class ConversionError(NersembleError):
    """Converting fetched assets into the store failed."""


class OutputError(NersembleError):
    """An output the command cannot write where it was asked to (its folder unwritable, full or read-only)."""


class StoreError(NersembleError):
    """A store that is missing, not ours, from a newer format version, or incomplete."""


class MissingStore(StoreError):
    """A store path where nothing is: the command line named a store that is not there (a usage error)."""

    exit_code = 2


class CodecConfigError(StoreError, ValueError):
    """A codec configuration (in an array's zarr.json, or given in code) with an unknown key or a value of the
    wrong type or out of range; a ValueError too, as zarr expects of a codec's ``from_dict``."""


class CorruptChunk(StoreError):
    """A stored chunk whose bytes do not decode: a truncated or overwritten file of the store."""


class MissingChunk(StoreError):
    """A chunk that the store's flags say was written, or a frame a reader asked for, whose file is absent."""


class FlameError(NersembleError):
    """The FLAME model is missing or malformed, or its parameters have the wrong shape."""


class SubmissionError(NersembleError):
    """Predictions that cannot become a valid submission, or an invalid submission zip."""


class Cancelled(Exception):
    """A run stopped on purpose before it finished: an interrupted fetch (its ``.part`` files stay for the
    next run), or a task stopped early because another task failed. Not a user's error, so no NersembleError."""


class EvaluationError(NersembleError):
    """Predictions that cannot be evaluated: no ground truth in the store, wrong size, bad values."""


def write_failure(what: str, error: OSError) -> str:
    """The sentence for an OSError while writing ``what`` (disk full, file size limit, permissions)."""
    return (f"Writing {what} failed ({error.strerror or type(error).__name__}); "
            "free space or fix permissions there, then rerun the same command to resume.")


SHOWN_CHARACTERS = 60


def shown(value: object, limit: int = SHOWN_CHARACTERS) -> str:
    """``repr(value)`` for a message quoting a user's or a server's value, cut after ``limit`` characters
    (a value of 100,000 characters would otherwise flood the terminal); a cut text says how long it was."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} characters" if isinstance(value, (str, bytes)) else f"{len(text)} characters shown"
    return f"{text[:limit]}... ({size})"
