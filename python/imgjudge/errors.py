"""The exceptions of imgjudge: one class per status code of the C API.

Every failed library call raises the subclass of :class:`ImgjudgeError` that
matches its status (``imgjudge_status`` in capi/imgjudge.h), carrying the
library's message for the calling thread, which names what was wrong and where
(file, line, column, argument). Catch :class:`ImgjudgeError` for all of them.
Some also derive from the built-in exception a Python caller would expect
(``ValueError``, ``OSError``, ``TimeoutError``, ``MemoryError``).
"""

from __future__ import annotations

from typing import Dict, Type


class ImgjudgeError(Exception):
    """A call into libimgjudge failed.

    Attributes:
        status: the numeric status code (pinned; see capi/imgjudge.h).
        code: its stable lower-case name, e.g. ``"invalid_image"``.
        message: the library's message, naming what was wrong and where.
    """

    status: int = -1
    code: str = "unknown"

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return "[%s] %s" % (self.code, self.message)

    def __reduce__(self):  # picklable across processes (Dask), with its fields
        return (_rebuild_error, (type(self), self.message, self.status, self.code))


def _rebuild_error(cls, message, status, code):
    return cls(message, status, code)


class InvalidArgumentError(ImgjudgeError, ValueError):
    """API misuse: a bad option value, a wrong type or size, an empty input."""

    status, code = 1, "invalid_argument"


class InvalidConstitutionError(ImgjudgeError, ValueError):
    """The constitution TOML is malformed or fails validation (the message has path:line:column)."""

    status, code = 2, "invalid_constitution"


class InvalidImageError(ImgjudgeError, ValueError):
    """The image bytes are corrupt, truncated or of an unknown format."""

    status, code = 3, "invalid_image"


class LimitExceededError(ImgjudgeError):
    """A configured limit (bytes, pixels, tokens, image memory) was exceeded."""

    status, code = 4, "limit_exceeded"


class InvalidModelError(ImgjudgeError):
    """A model folder is missing files or has bad headers or shapes."""

    status, code = 5, "invalid_model"


class UnsupportedError(ImgjudgeError):
    """A valid request this build or backend cannot serve."""

    status, code = 6, "unsupported"


class IoError(ImgjudgeError, OSError):
    """A file could not be opened or read (missing, a directory, a FIFO, no permission)."""

    status, code = 7, "io"


class DeadlineExceededError(ImgjudgeError, TimeoutError):
    """The call's deadline passed before it finished."""

    status, code = 8, "deadline_exceeded"


class CancelledError(ImgjudgeError):
    """The call was cancelled through its :class:`~imgjudge.CancelToken`."""

    status, code = 9, "cancelled"


class OutOfMemoryError(ImgjudgeError, MemoryError):
    """An allocation failed during the call."""

    status, code = 10, "out_of_memory"


class BackendError(ImgjudgeError):
    """The model backend failed (a numerical or runtime error)."""

    status, code = 11, "backend"


class InternalError(ImgjudgeError):
    """A bug in imgjudge; please report it with the message."""

    status, code = 12, "internal"


class LibraryNotFoundError(ImportError):
    """libimgjudge could not be loaded (see IMGJUDGE_LIBRARY in docs/python.md)."""


class IncompatibleLibraryError(ImportError):
    """The loaded libimgjudge is of a version this package cannot use."""


BY_STATUS: Dict[int, Type[ImgjudgeError]] = {
    cls.status: cls
    for cls in (InvalidArgumentError, InvalidConstitutionError, InvalidImageError, LimitExceededError,
                InvalidModelError, UnsupportedError, IoError, DeadlineExceededError, CancelledError,
                OutOfMemoryError, BackendError, InternalError)
}


def error_for(status: int, code: str, message: str) -> ImgjudgeError:
    """The exception for a failed status; an unknown non-zero status is a plain ImgjudgeError."""
    cls = BY_STATUS.get(status)
    if cls is None:
        return ImgjudgeError(message, status, code)
    return cls(message)
