"""Loading libimgjudge and declaring its C API for ctypes.

Everything that knows about C types lives here; the rest of the package calls
``lib().imgjudge_*`` through the signatures declared below. ctypes releases the
GIL for the duration of every call into a ``ctypes.CDLL``, so judging from many
Python threads runs in parallel inside the library.

Lookup order (the first that exists wins):

1. ``$IMGJUDGE_LIBRARY``: an explicit path to ``libimgjudge.so``;
2. the system loader: the soname this package was written for
   (``libimgjudge.so.0.1`` before 1.0), then ``ctypes.util.find_library("imgjudge")``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import List, Optional

from .errors import IncompatibleLibraryError, LibraryNotFoundError, error_for

# The C API version this package speaks (capi/imgjudge.h). Before 1.0 a minor
# release may break the ABI (docs/api-stability.md), so MAJOR.MINOR must match
# exactly; from 1.0 on the library's minor version must be at least this one.
REQUIRED_MAJOR = 0
REQUIRED_MINOR = 1
SONAME = "libimgjudge.so.%d.%d" % (REQUIRED_MAJOR, REQUIRED_MINOR) if REQUIRED_MAJOR == 0 \
    else "libimgjudge.so.%d" % REQUIRED_MAJOR

# Options layouts this package fills in (capi/imgjudge.h).
JUDGE_OPTIONS_VERSION = 3
MODELS_OPTIONS_VERSION = 1
CALL_OPTIONS_VERSION = 1

# Widths of the C integer fields, for range checks before ctypes would silently wrap.
INT_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
INT64_MAX = 2**63 - 1


class _Opaque(ctypes.Structure):
    """An opaque C struct: only pointers to it are ever used."""


class Constitution_(_Opaque):
    pass


class Judge_(_Opaque):
    pass


class Models_(_Opaque):
    pass


class Verdict_(_Opaque):
    pass


class CancelToken_(_Opaque):
    pass


class JudgeOptions(ctypes.Structure):
    """imgjudge_judge_options, layout version 3."""

    _fields_ = [
        ("version", ctypes.c_uint),
        ("backend", ctypes.c_char_p),
        ("model_dir", ctypes.c_char_p),
        ("relevance_model_dir", ctypes.c_char_p),
        ("script_path", ctypes.c_char_p),
        ("device", ctypes.c_char_p),
        ("dtype", ctypes.c_char_p),
        ("threads", ctypes.c_int),
        ("relevance", ctypes.c_int),
        ("debias", ctypes.c_int),
        ("chains", ctypes.c_int),
        ("cascade", ctypes.c_int),
        ("early_exit", ctypes.c_int),
        ("max_image_bytes", ctypes.c_uint64),
        ("max_image_width", ctypes.c_uint32),
        ("max_image_height", ctypes.c_uint32),
        ("max_image_pixels", ctypes.c_uint64),
        ("locator_model_dir", ctypes.c_char_p),
        ("locator", ctypes.c_int),
        ("reasoning_tokens", ctypes.c_int),
        ("image_memory_mb", ctypes.c_uint64),
    ]


class ModelsOptions(ctypes.Structure):
    """imgjudge_models_options, layout version 1."""

    _fields_ = [
        ("version", ctypes.c_uint),
        ("backend", ctypes.c_char_p),
        ("model_dir", ctypes.c_char_p),
        ("relevance_model_dir", ctypes.c_char_p),
        ("locator_model_dir", ctypes.c_char_p),
        ("script_path", ctypes.c_char_p),
        ("device", ctypes.c_char_p),
        ("dtype", ctypes.c_char_p),
        ("threads", ctypes.c_int),
        ("image_memory_mb", ctypes.c_uint64),
    ]


class CallOptions(ctypes.Structure):
    """imgjudge_call_options, layout version 1."""

    _fields_ = [
        ("version", ctypes.c_uint),
        ("deadline_ms", ctypes.c_int64),
        ("cancel", ctypes.POINTER(CancelToken_)),
    ]


_status = ctypes.c_int
_P = ctypes.POINTER

# name: (restype, argtypes). Every function the package calls, checked at load.
_SIGNATURES = {
    "imgjudge_version": (ctypes.c_char_p, []),
    "imgjudge_version_number": (ctypes.c_uint, []),
    "imgjudge_status_name": (ctypes.c_char_p, [ctypes.c_int]),
    "imgjudge_last_error_message": (ctypes.c_char_p, []),
    "imgjudge_last_error_code": (_status, []),
    "imgjudge_last_error_clear": (None, []),
    "imgjudge_constitution_load_file": (_status, [_P(_P(Constitution_)), ctypes.c_char_p]),
    "imgjudge_constitution_load_string": (
        _status, [_P(_P(Constitution_)), ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]),
    "imgjudge_constitution_load_default": (_status, [_P(_P(Constitution_))]),
    "imgjudge_constitution_free": (None, [_P(Constitution_)]),
    "imgjudge_constitution_rule_count": (_status, [_P(ctypes.c_size_t), _P(Constitution_)]),
    "imgjudge_constitution_rule_id": (
        _status, [_P(ctypes.c_char_p), _P(Constitution_), ctypes.c_size_t]),
    "imgjudge_constitution_hash": (_status, [_P(ctypes.c_char_p), _P(Constitution_)]),
    "imgjudge_judge_options_init": (_status, [_P(JudgeOptions), ctypes.c_uint]),
    "imgjudge_models_load": (_status, [_P(_P(Models_)), _P(ModelsOptions)]),
    "imgjudge_models_free": (None, [_P(Models_)]),
    "imgjudge_judge_create_with_models": (
        _status, [_P(_P(Judge_)), _P(Constitution_), _P(Models_), _P(JudgeOptions)]),
    "imgjudge_judge_free": (None, [_P(Judge_)]),
    "imgjudge_call_options_init": (_status, [_P(CallOptions), ctypes.c_uint]),
    "imgjudge_judge_bytes": (
        _status, [_P(_P(Verdict_)), _P(Judge_), ctypes.c_void_p, ctypes.c_size_t, _P(CallOptions)]),
    "imgjudge_judge_file": (_status, [_P(_P(Verdict_)), _P(Judge_), ctypes.c_char_p, _P(CallOptions)]),
    "imgjudge_judge_rgb": (
        _status, [_P(_P(Verdict_)), _P(Judge_), ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                  ctypes.c_size_t, _P(CallOptions)]),
    "imgjudge_verdict_free": (None, [_P(Verdict_)]),
    "imgjudge_verdict_decision": (_status, [_P(ctypes.c_int), _P(Verdict_)]),
    "imgjudge_verdict_violated_rule_count": (_status, [_P(ctypes.c_size_t), _P(Verdict_)]),
    "imgjudge_verdict_violated_rule_id": (_status, [_P(ctypes.c_char_p), _P(Verdict_), ctypes.c_size_t]),
    "imgjudge_verdict_review_rule_count": (_status, [_P(ctypes.c_size_t), _P(Verdict_)]),
    "imgjudge_verdict_review_rule_id": (_status, [_P(ctypes.c_char_p), _P(Verdict_), ctypes.c_size_t]),
    "imgjudge_verdict_json": (_status, [_P(ctypes.c_char_p), _P(ctypes.c_size_t), _P(Verdict_)]),
    "imgjudge_cancel_token_create": (_status, [_P(_P(CancelToken_))]),
    "imgjudge_cancel_token_cancel": (_status, [_P(CancelToken_)]),
    "imgjudge_cancel_token_is_cancelled": (_status, [_P(ctypes.c_int), _P(CancelToken_)]),
    "imgjudge_cancel_token_free": (None, [_P(CancelToken_)]),
}


def _candidates() -> List[str]:
    """Where to look for the library, in order (see the module docstring)."""
    explicit = os.environ.get("IMGJUDGE_LIBRARY")
    if explicit:
        return [explicit]
    names = [SONAME]
    found = ctypes.util.find_library("imgjudge")
    if found and found not in names:
        names.append(found)
    return names


def _open(candidates: List[str]) -> ctypes.CDLL:
    failures = []
    for name in candidates:
        try:
            return ctypes.CDLL(name)
        except OSError as error:
            failures.append("%s: %s" % (name, error))
    if os.environ.get("IMGJUDGE_LIBRARY"):
        raise LibraryNotFoundError(
            "imgjudge: cannot load the library named by IMGJUDGE_LIBRARY (%s)" % "; ".join(failures))
    raise LibraryNotFoundError(
        "imgjudge: libimgjudge is not installed where the system loader finds it (tried %s). "
        "Install it (cmake --install), add its folder to LD_LIBRARY_PATH, or set "
        "IMGJUDGE_LIBRARY=/path/to/libimgjudge.so" % "; ".join(failures))


def _check_version(library: ctypes.CDLL, path: str) -> None:
    try:
        version_number = library.imgjudge_version_number
    except AttributeError:
        raise IncompatibleLibraryError(
            "imgjudge: %s has no imgjudge_version_number(): not libimgjudge" % path) from None
    version_number.restype = ctypes.c_uint
    version_number.argtypes = []
    number = version_number()
    major, minor, patch = number // 10000, number // 100 % 100, number % 100
    compatible = major == REQUIRED_MAJOR and (
        minor == REQUIRED_MINOR if major == 0 else minor >= REQUIRED_MINOR)
    if not compatible:
        wanted = "%d.%d.x" % (REQUIRED_MAJOR, REQUIRED_MINOR) if REQUIRED_MAJOR == 0 \
            else "%d.x with x >= %d" % (REQUIRED_MAJOR, REQUIRED_MINOR)
        raise IncompatibleLibraryError(
            "imgjudge: %s is libimgjudge %d.%d.%d, but this Python package needs %s "
            "(docs/api-stability.md); install matching versions" % (path, major, minor, patch, wanted))
    missing = [name for name in _SIGNATURES if not hasattr(library, name)]
    if missing:
        raise IncompatibleLibraryError(
            "imgjudge: %s lacks %s; it is older than this package" % (path, ", ".join(missing)))
    for name, (restype, argtypes) in _SIGNATURES.items():
        function = getattr(library, name)
        function.restype = restype
        function.argtypes = argtypes


_library: Optional[ctypes.CDLL] = None
_library_path: Optional[str] = None
_lock = threading.Lock()


def lib() -> ctypes.CDLL:
    """The loaded, version-checked library (loaded on first use)."""
    global _library, _library_path
    if _library is None:
        with _lock:
            if _library is None:
                library = _open(_candidates())
                path = getattr(library, "_name", "libimgjudge")
                _check_version(library, path)
                _library_path = path
                _library = library
    return _library


def library_path() -> str:
    """The name or path the library was loaded from."""
    lib()
    assert _library_path is not None
    return _library_path


def check(status: int) -> None:
    """Raises the exception for a failed status, with this thread's library message.

    Must be called on the thread that made the failed call (the message is per
    thread), right after it: ctypes runs a call on the calling OS thread.
    """
    if status == 0:
        return
    library = lib()
    message = library.imgjudge_last_error_message().decode("utf-8", "replace")
    code = library.imgjudge_status_name(status).decode("ascii", "replace")
    raise error_for(status, code, message)


def text(value: Optional[bytes]) -> str:
    """A library-owned C string as str (the library guarantees UTF-8)."""
    return "" if value is None else value.decode("utf-8", "replace")
