"""imgjudge: judge images against a constitution of safety rules, from Python.

A thin, pure-Python layer (ctypes) over the installed ``libimgjudge.so`` and its
stable C API (docs/c-api.md)::

    import imgjudge
    models = imgjudge.Models(model_dir="/models/Qwen2-VL-2B-Instruct")
    judge = imgjudge.Judge(imgjudge.Constitution.default(), models)
    verdict = judge.judge("photo.jpg")
    print(verdict.decision, verdict.violated)

The library is found through ``$IMGJUDGE_LIBRARY`` (a path) or the system
loader, and its version is checked when this package is imported.
See docs/python.md; batch jobs on Dask: ``python3 -m imgjudge.batch --help``.
"""

from ._native import lib as _lib
from ._native import library_path
from .core import CancelToken, Constitution, ImageInput, Judge, Models
from .errors import (BackendError, CancelledError, DeadlineExceededError, ImgjudgeError,
                     IncompatibleLibraryError, InternalError, InvalidArgumentError,
                     InvalidConstitutionError, InvalidImageError, InvalidModelError, IoError,
                     LibraryNotFoundError, LimitExceededError, OutOfMemoryError, UnsupportedError)
from .verdict import (ConstitutionInfo, ImageInfo, Item, Region, Rule, Statement, Verdict)

__version__ = "0.1.0"

# Load and check the library now, so a missing or mismatched library is an
# ImportError naming what to do, not a failure at the first call.
_lib()


def library_version() -> str:
    """The version of the loaded libimgjudge, e.g. "0.1.0"."""
    return _lib().imgjudge_version().decode("ascii")


__all__ = [
    "BackendError", "CancelToken", "CancelledError", "Constitution", "ConstitutionInfo",
    "DeadlineExceededError", "ImageInfo", "ImageInput", "ImgjudgeError", "IncompatibleLibraryError",
    "InternalError", "InvalidArgumentError", "InvalidConstitutionError", "InvalidImageError",
    "InvalidModelError", "IoError", "Item", "Judge", "LibraryNotFoundError", "LimitExceededError",
    "Models", "OutOfMemoryError", "Region", "Rule", "Statement", "UnsupportedError", "Verdict",
    "library_path", "library_version",
]
