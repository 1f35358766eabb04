"""Constitutions, models, judges and cancel tokens: the handles of the C API.

Each class owns one library handle, freed by ``close()``, by leaving its
``with`` block, or when the object is garbage-collected. The library
reference-counts loaded models, so a :class:`Judge` keeps its models alive
after :meth:`Models.close`: close them in any order.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, List, Optional, Tuple, Union

from . import _native
from ._native import check, lib, text
from .errors import ImgjudgeError, InternalError, InvalidArgumentError
from .verdict import Verdict

if TYPE_CHECKING:  # only for type checkers: numpy and Pillow are optional at run time
    import numpy
    import PIL.Image

PathLike = Union[str, "os.PathLike[str]"]
#: What :meth:`Judge.judge` accepts: a file path, encoded bytes (JPEG, PNG, WebP,
#: GIF), an H x W x 3 ``uint8`` RGB numpy array, or a PIL image.
ImageInput = Union[PathLike, bytes, bytearray, memoryview, "numpy.ndarray", "PIL.Image.Image"]


def _c_path(name: str, value: Optional[PathLike]) -> Optional[bytes]:
    """A path argument as bytes for C (None stays None: the library's default)."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError("%s must be a path (str or os.PathLike), not %s" % (name, type(value).__name__))
    return os.fsencode(value)


def _c_str(name: str, value: Optional[str]) -> Optional[bytes]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("%s must be a str, not %s" % (name, type(value).__name__))
    return value.encode("utf-8")


def _c_int(name: str, value: Optional[int], low: int, high: int) -> int:
    """An integer for a C field; None is 0 (the default). Checked here because ctypes would wrap it."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int, not %s" % (name, type(value).__name__))
    if not low <= value <= high:
        raise InvalidArgumentError("%s is %d; it must be in [%d, %d]" % (name, value, low, high))
    return value


class _Handle:
    """Owns one library handle; ``_free`` names the function that frees it."""

    _free: str = ""

    def __init__(self) -> None:
        self._ptr: Any = None

    def _handle(self) -> Any:
        if self._ptr is None:
            raise ValueError("%s is closed" % type(self).__name__)
        return self._ptr

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def close(self) -> None:
        """Frees the handle now (idempotent)."""
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            getattr(lib(), self._free)(ptr)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # At interpreter exit the module globals may be gone already: then the
        # process is ending and the OS reclaims the memory.
        try:
            self.close()
        except Exception:
            pass


class Constitution(_Handle):
    """A validated constitution: the safety rules (docs/constitution-format.md).

    Create it with :meth:`from_file`, :meth:`from_string` or :meth:`default`.
    A :class:`Judge` copies it, so it may be closed once the judges exist.
    """

    _free = "imgjudge_constitution_free"

    def __init__(self) -> None:  # use the factory methods
        super().__init__()

    @classmethod
    def _adopt(cls, load: Callable[[Any], int]) -> "Constitution":
        out = ctypes.POINTER(_native.Constitution_)()
        check(load(ctypes.byref(out)))
        constitution = cls()
        constitution._ptr = out
        return constitution

    @classmethod
    def from_file(cls, path: PathLike) -> "Constitution":
        """Reads and validates a TOML file.

        Raises:
            IoError: the file cannot be read.
            InvalidConstitutionError: "path:line:column: what is wrong".
        """
        c_path = _c_path("path", path)
        return cls._adopt(lambda out: lib().imgjudge_constitution_load_file(out, c_path))

    @classmethod
    def from_string(cls, toml: str, source_name: Optional[str] = None) -> "Constitution":
        """Parses and validates TOML text; ``source_name`` names it in messages and verdicts."""
        if not isinstance(toml, str):
            raise TypeError("toml must be a str, not %s" % type(toml).__name__)
        data = toml.encode("utf-8")
        name = _c_str("source_name", source_name)
        return cls._adopt(lambda out: lib().imgjudge_constitution_load_string(out, data, len(data), name))

    @classmethod
    def default(cls) -> "Constitution":
        """The default constitution bundled with the library."""
        return cls._adopt(lambda out: lib().imgjudge_constitution_load_default(out))

    @property
    def rule_ids(self) -> Tuple[str, ...]:
        """The rule ids, in file order."""
        handle = self._handle()
        count = ctypes.c_size_t()
        check(lib().imgjudge_constitution_rule_count(ctypes.byref(count), handle))
        ids = []
        for index in range(count.value):
            rule_id = ctypes.c_char_p()
            check(lib().imgjudge_constitution_rule_id(ctypes.byref(rule_id), handle, index))
            ids.append(text(rule_id.value))
        return tuple(ids)

    @property
    def hash(self) -> str:
        """"sha256:<hex>" of the normalized rules (comments, key order and spacing do not count)."""
        value = ctypes.c_char_p()
        check(lib().imgjudge_constitution_hash(ctypes.byref(value), self._handle()))
        return text(value.value)

    def __len__(self) -> int:
        return len(self.rule_ids)

    def __repr__(self) -> str:
        if self.closed:
            return "Constitution(closed)"
        return "Constitution(%d rules, %s)" % (len(self), self.hash[:19])


class Models(_Handle):
    """Models loaded once (seconds; the weights are copied into memory), shared by any number of judges.

    Args:
        model_dir: Hugging Face folder of the vision-language model (torch backend).
        relevance_model_dir: CLIP/SigLIP folder for relevance scanning, or None.
        locator_model_dir: OWLv2/OWL-ViT folder for strategy 2, or None.
        backend: "torch" (default) or "scripted" (deterministic answers, for tests).
        script: the scripted backend's answer script (docs/scripted-backend.md).
        device: "cpu" (default) or "cuda[:N]".
        dtype: "auto" (default), "float32", "bfloat16" or "int8".
        threads: intra-op threads of the model; 0 means all cores.
        image_memory_mb: memory one image may take in the model; 0 means the default.

    Raises:
        InvalidArgumentError: a bad option value or an unknown backend.
        InvalidModelError, IoError, UnsupportedError: a folder that is missing, broken
            or of an unsupported family.
    """

    _free = "imgjudge_models_free"

    def __init__(self, model_dir: Optional[PathLike] = None, *, relevance_model_dir: Optional[PathLike] = None,
                 locator_model_dir: Optional[PathLike] = None, backend: str = "torch",
                 script: Optional[PathLike] = None, device: str = "cpu", dtype: str = "auto", threads: int = 0,
                 image_memory_mb: int = 0) -> None:
        super().__init__()
        options = _native.ModelsOptions()
        options.version = _native.MODELS_OPTIONS_VERSION
        options.backend = _c_str("backend", backend)
        options.model_dir = _c_path("model_dir", model_dir)
        options.relevance_model_dir = _c_path("relevance_model_dir", relevance_model_dir)
        options.locator_model_dir = _c_path("locator_model_dir", locator_model_dir)
        options.script_path = _c_path("script", script)
        options.device = _c_str("device", device)
        options.dtype = _c_str("dtype", dtype)
        options.threads = _c_int("threads", threads, 0, _native.INT_MAX)
        options.image_memory_mb = _c_int("image_memory_mb", image_memory_mb, 0, _native.UINT64_MAX)
        out = ctypes.POINTER(_native.Models_)()
        check(lib().imgjudge_models_load(ctypes.byref(out), ctypes.byref(options)))
        self._ptr = out
        self.backend = backend

    def __repr__(self) -> str:
        return "Models(backend=%r%s)" % (self.backend, ", closed" if self.closed else "")


class CancelToken(_Handle):
    """Cancels the calls it is given, from any thread: they raise :class:`CancelledError`
    at their next check (between model steps). Cancelling cannot be undone."""

    _free = "imgjudge_cancel_token_free"

    def __init__(self) -> None:
        super().__init__()
        out = ctypes.POINTER(_native.CancelToken_)()
        check(lib().imgjudge_cancel_token_create(ctypes.byref(out)))
        self._ptr = out

    def cancel(self) -> None:
        """Cancels every call given this token, now or later."""
        check(lib().imgjudge_cancel_token_cancel(self._handle()))

    @property
    def cancelled(self) -> bool:
        value = ctypes.c_int()
        check(lib().imgjudge_cancel_token_is_cancelled(ctypes.byref(value), self._handle()))
        return bool(value.value)


def _call_options(deadline_ms: Optional[int], cancel: Optional[CancelToken]) -> Optional[_native.CallOptions]:
    if deadline_ms is None and cancel is None:
        return None
    options = _native.CallOptions()
    options.version = _native.CALL_OPTIONS_VERSION
    # 0 means "no deadline" in C; a Python caller asking for 0 ms means "already late".
    if deadline_ms is not None:
        options.deadline_ms = _c_int("deadline_ms", deadline_ms, 1, _native.INT64_MAX)
    if cancel is not None:
        if not isinstance(cancel, CancelToken):
            raise TypeError("cancel must be an imgjudge.CancelToken, not %s" % type(cancel).__name__)
        options.cancel = cancel._handle()
    return options


class Judge(_Handle):
    """Judges images against one constitution with loaded models.

    Creating a judge does every image-independent step once (rule embeddings,
    language priors, prompts): it takes about as long as judging a few images.
    A judge is thread-safe: call :meth:`judge` from many threads, or use
    :meth:`judge_many`. The library releases the GIL while it judges.

    Args:
        constitution: the rules (copied: it may be closed afterwards).
        models: loaded models; several judges may share one :class:`Models`.
        relevance, debias, chains, cascade, early_exit, locator: the method's
            stages, all on by default (switch off for ablations).
        reasoning_tokens: token budget of each cascaded-reasoning turn (None: 512).
        max_image_bytes, max_image_width, max_image_height, max_image_pixels:
            limits on images (None: 64 MiB, 16384, 16384, 64 Mpx).
    """

    _free = "imgjudge_judge_free"

    def __init__(self, constitution: Constitution, models: Models, *, relevance: bool = True,
                 debias: bool = True, chains: bool = True, cascade: bool = True, early_exit: bool = True,
                 locator: bool = True, reasoning_tokens: Optional[int] = None,
                 max_image_bytes: Optional[int] = None, max_image_width: Optional[int] = None,
                 max_image_height: Optional[int] = None, max_image_pixels: Optional[int] = None) -> None:
        super().__init__()
        if not isinstance(constitution, Constitution):
            raise TypeError("constitution must be an imgjudge.Constitution (use Constitution.from_file), not %s"
                            % type(constitution).__name__)
        if not isinstance(models, Models):
            raise TypeError("models must be an imgjudge.Models, not %s" % type(models).__name__)
        options = _native.JudgeOptions()
        check(lib().imgjudge_judge_options_init(ctypes.byref(options), _native.JUDGE_OPTIONS_VERSION))
        for name, value in (("relevance", relevance), ("debias", debias), ("chains", chains),
                            ("cascade", cascade), ("early_exit", early_exit), ("locator", locator)):
            if not isinstance(value, bool):
                raise TypeError("%s must be a bool, not %s" % (name, type(value).__name__))
            setattr(options, name, int(value))
        options.reasoning_tokens = _c_int("reasoning_tokens", reasoning_tokens, 1, _native.INT_MAX)
        options.max_image_bytes = _c_int("max_image_bytes", max_image_bytes, 1, _native.UINT64_MAX)
        options.max_image_width = _c_int("max_image_width", max_image_width, 1, _native.UINT32_MAX)
        options.max_image_height = _c_int("max_image_height", max_image_height, 1, _native.UINT32_MAX)
        options.max_image_pixels = _c_int("max_image_pixels", max_image_pixels, 1, _native.UINT64_MAX)
        out = ctypes.POINTER(_native.Judge_)()
        check(lib().imgjudge_judge_create_with_models(ctypes.byref(out), constitution._handle(),
                                                      models._handle(), ctypes.byref(options)))
        self._ptr = out
        self.rule_ids = constitution.rule_ids
        # In-flight calls: close() must not free the handle under a running call.
        self._calls = 0
        self._idle = threading.Condition()

    def close(self) -> None:
        """Frees the judge once the calls already running on it have returned; later calls raise ValueError."""
        if getattr(self, "_idle", None) is None:  # __init__ failed before the handle existed
            return super().close()
        with self._idle:
            ptr, self._ptr = self._ptr, None
            while self._calls:
                self._idle.wait()
        if ptr is not None:
            lib().imgjudge_judge_free(ptr)

    def _enter_call(self) -> Any:
        with self._idle:
            handle = self._handle()
            self._calls += 1
            return handle

    def _leave_call(self) -> None:
        with self._idle:
            self._calls -= 1
            if not self._calls:
                self._idle.notify_all()

    def judge(self, image: ImageInput, *, deadline_ms: Optional[int] = None,
              cancel: Optional[CancelToken] = None) -> Verdict:
        """Judges one image.

        Args:
            image: a file path (str or os.PathLike); encoded bytes (JPEG, PNG, WebP or
                GIF, sniffed); an H x W x 3 ``uint8`` RGB numpy array; or a PIL image
                (converted to RGB, alpha composited on white as the library does for files).
            deadline_ms: time limit of this call in milliseconds (None: none).
            cancel: a :class:`CancelToken` that can stop this call from another thread.

        Raises:
            InvalidImageError, LimitExceededError, IoError, DeadlineExceededError,
            CancelledError, BackendError, InvalidArgumentError: the image could not be
            judged; the judge stays usable.
        """
        call = _call_options(deadline_ms, cancel)
        call_ref = None if call is None else ctypes.byref(call)
        out = ctypes.POINTER(_native.Verdict_)()
        handle = self._enter_call()
        try:
            if isinstance(image, (str, os.PathLike)):
                status = lib().imgjudge_judge_file(ctypes.byref(out), handle, os.fsencode(image), call_ref)
            elif isinstance(image, (bytes, bytearray, memoryview)):
                data, size = _byte_buffer(image)
                status = lib().imgjudge_judge_bytes(ctypes.byref(out), handle, data, size, call_ref)
            else:
                pixels, keep_alive, width, height, stride = _rgb_pixels(image)
                status = lib().imgjudge_judge_rgb(ctypes.byref(out), handle, pixels, width, height, stride,
                                                  call_ref)
                del keep_alive
            check(status)
        finally:
            self._leave_call()
        try:
            return _read_verdict(out)
        finally:
            lib().imgjudge_verdict_free(out)

    def judge_many(self, images: Iterable[ImageInput], max_workers: Optional[int] = None, *,
                   deadline_ms: Optional[int] = None, cancel: Optional[CancelToken] = None,
                   return_exceptions: bool = False) -> Iterator[Union[Verdict, ImgjudgeError]]:
        """Judges images on a pool of threads, yielding the verdicts in input order.

        The library runs the calls in parallel (the GIL is released during each).
        At most ``2 * max_workers`` images are in flight, so ``images`` may be a
        long lazy iterable. Mind the cores: every call also uses the model's
        intra-op threads (``Models(threads=...)``); see docs/python.md.

        Args:
            images: anything :meth:`judge` accepts, one per image.
            max_workers: threads judging at once (None: the number of CPUs, at most 8).
            deadline_ms, cancel: as for :meth:`judge`, per image and shared.
            return_exceptions: yield the :class:`ImgjudgeError` of an image that could not
                be judged in its place instead of raising it (and stopping).
        """
        if max_workers is None:
            max_workers = min(8, os.cpu_count() or 1)
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise InvalidArgumentError("max_workers must be an int >= 1, not %r" % (max_workers,))

        def judge_one(image: ImageInput) -> Union[Verdict, ImgjudgeError]:
            try:
                return self.judge(image, deadline_ms=deadline_ms, cancel=cancel)
            except ImgjudgeError as error:
                if return_exceptions:
                    return error
                raise

        return _ordered_map(judge_one, images, max_workers)

    def __repr__(self) -> str:
        return "Judge(%d rules%s)" % (len(self.rule_ids), ", closed" if self.closed else "")


def _ordered_map(function: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """``map(function, items)`` on ``workers`` threads, in order, with a bounded window."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imgjudge")
    pending: List[Future] = []
    try:
        iterator = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * workers:
                try:
                    pending.append(pool.submit(function, next(iterator)))
                except StopIteration:
                    exhausted = True
            if not pending:
                return
            yield pending.pop(0).result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


def _byte_buffer(image: Union[bytes, bytearray, memoryview]) -> Tuple[Any, int]:
    """A pointer-compatible view of encoded bytes, without copying where possible."""
    if isinstance(image, bytes):
        return image, len(image)
    view = memoryview(image)
    if view.readonly or not view.c_contiguous:
        data = view.tobytes()
        return data, len(data)
    view = view.cast("B")
    return (ctypes.c_char * view.nbytes).from_buffer(view), view.nbytes


def _rgb_pixels(image: Any) -> Tuple[Any, Any, int, int, int]:
    """(pointer, object keeping it alive, width, height, stride) of a numpy array or PIL image."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(image, numpy.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != numpy.uint8:
            raise InvalidArgumentError(
                "image: a numpy array must be H x W x 3 uint8 RGB, not shape %s dtype %s"
                % (tuple(image.shape), image.dtype))
        height, width = int(image.shape[0]), int(image.shape[1])
        # The library reads rows `stride` bytes apart, each 3 * width packed bytes.
        if image.strides[2] != 1 or image.strides[1] != 3 or image.strides[0] < 3 * width:
            image = numpy.ascontiguousarray(image)
        _check_size(width, height)
        return image.ctypes.data, image, width, height, int(image.strides[0])
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(image, pil.Image):
        rgb = _pil_rgb(image, pil)
        width, height = rgb.size
        _check_size(width, height)
        data = rgb.tobytes()
        return data, data, width, height, 3 * width
    raise TypeError("image must be a path, bytes, an H x W x 3 uint8 numpy array or a PIL image, not %s"
                    % type(image).__name__)


def _check_size(width: int, height: int) -> None:
    if not (0 < width <= _native.INT_MAX and 0 < height <= _native.INT_MAX):
        raise InvalidArgumentError("image: %d x %d pixels; both sides must be > 0" % (width, height))


def _pil_rgb(image: Any, pil: Any) -> Any:
    """An RGB PIL image; straight alpha composited on white exactly as the library does
    for files (out = (c * a + 255 * (255 - a) + 127) // 255), so a PIL image and its file
    give the same verdict."""
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    numpy = sys.modules.get("numpy")
    if numpy is None:
        try:
            import numpy  # type: ignore[no-redef]
        except ImportError:  # rounding may differ by one from the library's
            background = pil.new("RGBA", rgba.size, (255, 255, 255, 255))
            return pil.alpha_composite(background, rgba).convert("RGB")
    pixels = numpy.asarray(rgba, dtype=numpy.uint32)
    alpha = pixels[:, :, 3:4]
    rgb = (pixels[:, :, :3] * alpha + 255 * (255 - alpha) + 127) // 255
    return pil.fromarray(rgb.astype(numpy.uint8), "RGB")


def _read_verdict(ptr: Any) -> Verdict:
    """A Verdict from a C verdict; its decision and rule ids are cross-checked with the C accessors."""
    library = lib()
    json_text = ctypes.c_char_p()
    check(library.imgjudge_verdict_json(ctypes.byref(json_text), None, ptr))
    verdict = Verdict(text(json_text.value))
    decision = ctypes.c_int()
    check(library.imgjudge_verdict_decision(ctypes.byref(decision), ptr))
    count = ctypes.c_size_t()
    check(library.imgjudge_verdict_violated_rule_count(ctypes.byref(count), ptr))
    violated = []
    for index in range(count.value):
        rule_id = ctypes.c_char_p()
        check(library.imgjudge_verdict_violated_rule_id(ctypes.byref(rule_id), ptr, index))
        violated.append(text(rule_id.value))
    expected = ("safe", "unsafe", "review")[decision.value] if 0 <= decision.value <= 2 else None
    if expected != verdict.decision or tuple(violated) != verdict.violated:
        raise InternalError("the verdict JSON (%s, %s) disagrees with the C accessors (%s, %s)"
                            % (verdict.decision, list(verdict.violated), expected, violated))
    return verdict
