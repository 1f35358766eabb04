"""Batch jobs: judge a manifest of images on a Dask cluster, resumably.

    python3 -m imgjudge.batch MANIFEST --out DIR [--scheduler tcp://HOST:PORT | --workers N]
                              [--constitution FILE] [model and method options as the CLI's]

The manifest is a text file of image paths (one per line), a CSV file with a
``path`` column (``.csv``), JSON lines with a ``path`` field (``.jsonl`` /
``.ndjson``), or a folder (its images, recursively). Relative paths are
relative to the manifest's folder.

The job is cut into partitions of ``--partition-size`` consecutive manifest
entries. Each Dask worker loads the models once (a worker plugin); a task
judges one partition and commits ``DIR/part-XXXXX.jsonl`` atomically (written
to a temporary file, then renamed), one line per image: the verdict JSON with
its ``"path"``, or ``{"path": ..., "error": {"code": ..., "message": ...}}``.
A partition is either committed whole or not at all, so a killed worker (Dask
reruns its task elsewhere) or a killed job (``--resume`` skips the committed
partitions) loses nothing and judges nothing twice in the output.
``DIR/job.json`` records what the job is (manifest hash, partition size,
constitution hash, options); ``--resume`` refuses a different job.
At the end ``DIR/summary.json`` has the counts, rates and errors by code.

See docs/scaling.md.
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .core import Constitution, Judge, Models
from .errors import ImgjudgeError

JOB_FORMAT = "imgjudge.batch/1"
DEFAULT_PARTITION_SIZE = 64
PLUGIN_NAME = "imgjudge-judge"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif")
_PART_PATTERN = re.compile(r"^part-(\d{5,})\.jsonl$")


class BatchError(Exception):
    """A batch job could not start or continue (bad manifest, a different job in DIR, ...)."""


# ---------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One image of the manifest: the path as written there, and where to read it."""

    path: str
    resolved: str


@dataclass(frozen=True)
class Manifest:
    source: str
    kind: str  # "text" | "csv" | "jsonl" | "folder"
    entries: Tuple[Entry, ...]
    skipped_files: int = 0  # folder manifests: files that are not images by their suffix

    @property
    def hash(self) -> str:
        """sha256 of the ordered list of paths: what decides the partitions."""
        digest = hashlib.sha256()
        for entry in self.entries:
            digest.update(entry.path.encode("utf-8", "surrogateescape"))
            digest.update(b"\0")
        return "sha256:" + digest.hexdigest()


def read_manifest(source: str) -> Manifest:
    """Reads a manifest (see the module docstring) into its entries, in order.

    Raises:
        BatchError: the manifest cannot be read, a line or row has no path, or it is empty.
    """
    if os.path.isdir(source):
        return _read_folder(source)
    base = os.path.dirname(os.path.abspath(source))
    try:
        with open(source, "r", encoding="utf-8", newline="") as stream:
            suffix = os.path.splitext(source)[1].lower()
            if suffix == ".csv":
                kind, paths = "csv", _csv_paths(stream, source)
            elif suffix in (".jsonl", ".ndjson"):
                kind, paths = "jsonl", _jsonl_paths(stream, source)
            else:
                kind, paths = "text", _text_paths(stream)
    except OSError as error:
        raise BatchError("manifest %s: %s" % (source, error.strerror or error)) from None
    except UnicodeDecodeError as error:
        raise BatchError("manifest %s: not UTF-8 text (%s)" % (source, error.reason)) from None
    if not paths:
        raise BatchError("manifest %s lists no images" % source)
    _refuse_repeats(paths, source)
    entries = tuple(Entry(path, path if os.path.isabs(path) else os.path.join(base, path)) for path in paths)
    return Manifest(source, kind, entries)


def _refuse_repeats(paths: List[str], source: str) -> None:
    # Results are keyed by path: a repeated path would be judged twice.
    seen: Dict[str, int] = {}
    for number, path in enumerate(paths, 1):
        if path in seen:
            raise BatchError("manifest %s: entry %d repeats %s (entry %d); list each image once"
                             % (source, number, path, seen[path]))
        seen[path] = number


def _text_paths(stream: IO[str]) -> List[str]:
    # One path per line; surrounding white space and empty lines are ignored.
    return [line.strip() for line in stream if line.strip()]


def _csv_paths(stream: IO[str], source: str) -> List[str]:
    reader = csv.DictReader(stream)
    if reader.fieldnames is None or "path" not in reader.fieldnames:
        raise BatchError("manifest %s: a CSV manifest needs a 'path' column; its header is %s"
                         % (source, reader.fieldnames))
    paths = []
    for row in reader:
        path = (row.get("path") or "").strip()
        if not path:
            raise BatchError("manifest %s:%d: empty 'path'" % (source, reader.line_num))
        paths.append(path)
    return paths


def _jsonl_paths(stream: IO[str], source: str) -> List[str]:
    paths = []
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise BatchError("manifest %s:%d: not JSON (%s)" % (source, number, error)) from None
        path = record.get("path") if isinstance(record, dict) else None
        if not isinstance(path, str) or not path:
            raise BatchError("manifest %s:%d: each line needs a \"path\" string" % (source, number))
        paths.append(path)
    return paths


def _read_folder(folder: str) -> Manifest:
    paths, skipped = [], 0
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_SUFFIXES):
                paths.append(os.path.join(root, name))
            else:
                skipped += 1
    if not paths:
        raise BatchError("manifest %s: the folder holds no images (%s)" % (folder, ", ".join(IMAGE_SUFFIXES)))
    # Sorted by walk order (sorted names at each level): deterministic for resume.
    return Manifest(folder, "folder", tuple(Entry(path, os.path.abspath(path)) for path in paths), skipped)


def partitions(manifest: Manifest, size: int) -> List[Tuple[Entry, ...]]:
    """The manifest cut into consecutive partitions of ``size`` entries (the last may be shorter)."""
    return [manifest.entries[start:start + size] for start in range(0, len(manifest.entries), size)]


def part_name(index: int) -> str:
    return "part-%05d.jsonl" % index


# ---------------------------------------------------------------------------
# Job settings
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSettings:
    """``imgjudge.Models`` arguments (the CLI's model options)."""

    model_dir: Optional[str] = None
    relevance_model_dir: Optional[str] = None
    locator_model_dir: Optional[str] = None
    backend: str = "torch"
    script: Optional[str] = None
    device: str = "cpu"
    dtype: str = "auto"
    threads: int = 0
    image_memory_mb: int = 0

    def absolute(self) -> "ModelSettings":
        """Paths made absolute, so the job's record does not depend on the current folder."""
        def absolute_path(path: Optional[str]) -> Optional[str]:
            return None if path is None else os.path.abspath(path)
        return dataclasses.replace(self, model_dir=absolute_path(self.model_dir),
                                   relevance_model_dir=absolute_path(self.relevance_model_dir),
                                   locator_model_dir=absolute_path(self.locator_model_dir),
                                   script=absolute_path(self.script))


@dataclass(frozen=True)
class MethodSettings:
    """``imgjudge.Judge`` keyword arguments and the per-image deadline."""

    relevance: bool = True
    debias: bool = True
    chains: bool = True
    cascade: bool = True
    early_exit: bool = True
    locator: bool = True
    reasoning_tokens: Optional[int] = None
    deadline_ms: Optional[int] = None

    def judge_kwargs(self) -> Dict[str, Any]:
        kwargs = dataclasses.asdict(self)
        del kwargs["deadline_ms"]
        return kwargs


# ---------------------------------------------------------------------------
# The worker side
# ---------------------------------------------------------------------------

try:  # distributed is needed to run a job, not to read manifests or results
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPluginBase
except ImportError:  # pragma: no cover - exercised only without python3-distributed
    _WorkerPluginBase = object  # type: ignore[assignment,misc]


class JudgePlugin(_WorkerPluginBase):  # type: ignore[misc,valid-type]
    """Loads the models and the judge once per worker process, when the worker starts
    (or when the plugin is registered). Pickled to the workers: it carries only settings."""

    name = PLUGIN_NAME

    def __init__(self, models: ModelSettings, method: MethodSettings, constitution_toml: Optional[str],
                 constitution_source: Optional[str]) -> None:
        self.models = models
        self.method = method
        self.constitution_toml = constitution_toml
        self.constitution_source = constitution_source
        self.judge: Optional[Judge] = None
        self.load_seconds = 0.0

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["judge"] = None  # a judge lives in one process
        return state

    def setup(self, worker: Any = None) -> None:
        started = time.monotonic()
        if self.constitution_toml is None:
            constitution = Constitution.default()
        else:
            constitution = Constitution.from_string(self.constitution_toml, self.constitution_source)
        with constitution, Models(**dataclasses.asdict(self.models)) as models:
            self.judge = Judge(constitution, models, **self.method.judge_kwargs())
        self.load_seconds = time.monotonic() - started

    def teardown(self, worker: Any = None) -> None:
        if self.judge is not None:
            self.judge.close()
            self.judge = None


def _worker_judge() -> Tuple[Judge, MethodSettings, str]:
    from distributed import get_worker

    worker = get_worker()
    plugin = worker.plugins.get(PLUGIN_NAME)
    if plugin is None or plugin.judge is None:
        raise RuntimeError("imgjudge.batch: worker %s has no judge: its plugin did not load (see its log)"
                           % worker.address)
    return plugin.judge, plugin.method, worker.address


def judge_entries(judge: Judge, entries: Iterable[Entry], deadline_ms: Optional[int]) -> List[Dict[str, Any]]:
    """One result record per entry, in order: the verdict with its path, or the error."""
    records = []
    for entry in entries:
        try:
            verdict = judge.judge(entry.resolved, deadline_ms=deadline_ms)
        except ImgjudgeError as error:
            records.append({"path": entry.path, "error": {"code": error.code, "message": error.message}})
            continue
        record = {"path": entry.path}
        record.update(verdict.to_dict())
        records.append(record)
    return records


def write_atomically(path: str, data: bytes) -> None:
    """Writes ``path`` so that it either does not exist or holds all of ``data``:
    a temporary file in the same folder, flushed to disk, renamed over ``path``."""
    folder = os.path.dirname(path) or "."
    temporary = os.path.join(folder, ".%s.tmp-%s-%d" % (os.path.basename(path), socket.gethostname(), os.getpid()))
    with open(temporary, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def judge_partition(index: int, entries: Sequence[Entry], out_dir: str) -> Dict[str, Any]:
    """The task: judges one partition on this worker and commits its part file."""
    judge, method, address = _worker_judge()
    started = time.monotonic()
    records = judge_entries(judge, entries, method.deadline_ms)
    lines = "".join(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n" for record in records)
    write_atomically(os.path.join(out_dir, part_name(index)), lines.encode("utf-8"))
    return {"partition": index, "images": len(records), "seconds": time.monotonic() - started,
            "errors": sum(1 for record in records if "error" in record), "worker": address}


# ---------------------------------------------------------------------------
# The client side
# ---------------------------------------------------------------------------

@dataclass
class Summary:
    """What a job did; ``DIR/summary.json``. Counts are over the whole job (all committed
    partitions, also those of earlier runs); ``this_run`` only over this run."""

    images: int = 0  # in the manifest
    results: int = 0  # lines committed (verdicts + errors)
    decisions: Dict[str, int] = field(default_factory=dict)  # safe / unsafe / review
    errors: Dict[str, int] = field(default_factory=dict)  # by error code
    partitions: int = 0
    committed_partitions: int = 0
    failed_partitions: List[Dict[str, Any]] = field(default_factory=list)  # not committed: rerun with resume
    this_run: Dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.committed_partitions == self.partitions and self.results == self.images

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        out["complete"] = self.complete
        out["error_count"] = sum(self.errors.values())
        return out


class _Progress:
    """A one-line progress bar on stderr (redrawn on a terminal, a line every few seconds otherwise)."""

    def __init__(self, total_partitions: int, total_images: int, enabled: bool, stream: IO[str]) -> None:
        self.total_partitions, self.total_images = total_partitions, total_images
        self.enabled, self.stream = enabled, stream
        self.tty = enabled and stream.isatty()
        self.started = time.monotonic()
        self.partitions = self.images = self.errors = self.failed = 0
        self.last_print = 0.0

    def update(self, images: int, errors: int, failed: bool = False) -> None:
        self.partitions += 1
        self.images += images
        self.errors += errors
        self.failed += failed
        now = time.monotonic()
        if not self.enabled or (not self.tty and now - self.last_print < 5 and self.partitions < self.total_partitions):
            return
        self.last_print = now
        width = 30
        filled = width * self.partitions // max(1, self.total_partitions)
        rate = self.images / max(1e-9, now - self.started)
        line = "imgjudge.batch [%s%s] %d/%d partitions, %d/%d images, %.1f images/s, %d errors%s" % (
            "#" * filled, "." * (width - filled), self.partitions, self.total_partitions, self.images,
            self.total_images, rate, self.errors, ", %d partitions failed" % self.failed if self.failed else "")
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _job_record(manifest: Manifest, partition_size: int, constitution_hash: str, models: ModelSettings,
                method: MethodSettings) -> Dict[str, Any]:
    return {
        "format": JOB_FORMAT,
        "manifest": {"source": manifest.source, "kind": manifest.kind, "hash": manifest.hash,
                     "images": len(manifest.entries)},
        "partition_size": partition_size,
        "partitions": len(partitions(manifest, partition_size)),
        "constitution_hash": constitution_hash,
        "models": dataclasses.asdict(models),
        "method": dataclasses.asdict(method),
    }


def _check_same_job(recorded: Dict[str, Any], wanted: Dict[str, Any], job_path: str) -> None:
    """Refuses to resume into a folder of another job (naming what differs)."""
    differences = []
    if recorded.get("format") != JOB_FORMAT:
        differences.append("format %r, not %r" % (recorded.get("format"), JOB_FORMAT))
    if recorded.get("manifest", {}).get("hash") != wanted["manifest"]["hash"]:
        differences.append("manifest (%s lists other images or another order)" % wanted["manifest"]["source"])
    for key in ("partition_size", "constitution_hash", "models", "method"):
        recorded_value, wanted_value = recorded.get(key), wanted[key]
        if key == "models" and isinstance(recorded_value, dict):
            # Thread counts change the speed, not the verdicts: a resume may use other machines.
            recorded_value = dict(recorded_value, threads=None)
            wanted_value = dict(wanted_value, threads=None)
        if recorded_value != wanted_value:
            differences.append("%s (recorded %s, now %s)" % (key, json.dumps(recorded.get(key), sort_keys=True),
                                                            json.dumps(wanted[key], sort_keys=True)))
    if differences:
        raise BatchError("%s is another job; cannot resume it with a different %s. Use another --out folder."
                         % (job_path, "; ".join(differences)))


def _committed_partitions(out_dir: str) -> Dict[int, str]:
    committed = {}
    for name in os.listdir(out_dir):
        match = _PART_PATTERN.match(name)
        if match:
            committed[int(match.group(1))] = os.path.join(out_dir, name)
    return committed


def _remove_stale_temporaries(out_dir: str) -> None:
    # Left by workers killed while writing; safe to remove because DIR/.lock is held.
    for name in os.listdir(out_dir):
        if name.startswith(".part-") and ".tmp-" in name:
            os.unlink(os.path.join(out_dir, name))


def read_results(out_dir: str) -> Dict[str, Dict[str, Any]]:
    """Every committed result of a job folder, by path (BatchError if a path appears twice)."""
    results: Dict[str, Dict[str, Any]] = {}
    for index, path in sorted(_committed_partitions(out_dir).items()):
        with open(path, "r", encoding="utf-8") as stream:
            for number, line in enumerate(stream, 1):
                record = json.loads(line)
                if record["path"] in results:
                    raise BatchError("%s:%d: %s was judged twice" % (path, number, record["path"]))
                results[record["path"]] = record
    return results


def _summarize(out_dir: str, manifest: Manifest, partition_size: int, failed: List[Dict[str, Any]],
               this_run: Dict[str, Any]) -> Summary:
    summary = Summary(images=len(manifest.entries), partitions=len(partitions(manifest, partition_size)),
                      failed_partitions=failed, this_run=this_run)
    decisions: collections.Counter = collections.Counter()
    errors: collections.Counter = collections.Counter()
    committed = _committed_partitions(out_dir)
    summary.committed_partitions = sum(1 for index in committed if index < summary.partitions)
    for record in read_results(out_dir).values():
        summary.results += 1
        if "error" in record:
            errors[record["error"]["code"]] += 1
        else:
            decisions[record["decision"]] += 1
    summary.decisions = dict(sorted(decisions.items()))
    summary.errors = dict(sorted(errors.items()))
    return summary


def run(manifest: str, out: str, *, scheduler: Optional[str] = None, workers: Optional[int] = None,
        threads_per_worker: int = 1, constitution: Optional[str] = None,
        models: Optional[ModelSettings] = None, method: Optional[MethodSettings] = None,
        partition_size: Optional[int] = None, resume: bool = False, progress: bool = True,
        progress_stream: Optional[IO[str]] = None) -> Summary:
    """Judges every image of ``manifest`` into ``out`` on a Dask cluster (see the module docstring).

    Args:
        manifest: a text, CSV or JSON lines file of image paths, or a folder.
        out: the job folder (created); results ``part-XXXXX.jsonl``, ``job.json``, ``summary.json``.
        scheduler: address of a running Dask scheduler (``tcp://HOST:PORT``); None starts a
            local cluster of ``workers`` worker processes.
        workers: worker processes of the local cluster (default 1).
        threads_per_worker: images judged at once per local worker process (default 1).
        constitution: a TOML file; None: the library's default constitution.
        models: the models to load in each worker. Their ``threads`` default (0) becomes
            cores / workers on a local cluster, so that workers do not oversubscribe the cores.
        method: stage switches, reasoning budget and per-image deadline.
        partition_size: images per partition and part file (default 64; on resume, the recorded one).
        resume: continue the job recorded in ``out``, skipping its committed partitions.
        progress: draw a progress bar on ``progress_stream`` (default stderr).

    Returns:
        The :class:`Summary` (also written to ``out/summary.json``).

    Raises:
        BatchError: a bad manifest, ``out`` holding another job (or this one, without ``resume``),
            or workers that could not load the models.
        ImgjudgeError: the constitution is invalid.
    """
    started = time.monotonic()
    stream = progress_stream if progress_stream is not None else sys.stderr
    models = models or ModelSettings()
    method = method or MethodSettings()
    if scheduler is not None and workers is not None:
        raise BatchError("give either a scheduler address or a number of local workers, not both")
    if workers is not None and workers < 1:
        raise BatchError("workers must be >= 1, not %d" % workers)
    local_workers = workers or 1
    if scheduler is None and models.threads == 0:
        models = dataclasses.replace(models, threads=max(1, (os.cpu_count() or 1) // local_workers))
    models = models.absolute()

    job_manifest = read_manifest(manifest)
    if constitution is None:
        constitution_toml = constitution_source = None
        with Constitution.default() as rules:
            constitution_hash = rules.hash
    else:
        with Constitution.from_file(constitution) as rules:  # validates before any worker starts
            constitution_hash = rules.hash
        with open(constitution, "r", encoding="utf-8") as file:
            constitution_toml, constitution_source = file.read(), constitution

    os.makedirs(out, exist_ok=True)
    lock = open(os.path.join(out, ".lock"), "w")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BatchError("%s is in use by another running batch job" % out) from None
        job_path = os.path.join(out, "job.json")
        if os.path.exists(job_path):
            if not resume:
                raise BatchError("%s holds a job already (job.json): pass --resume to continue it, "
                                 "or choose another --out folder" % out)
            with open(job_path, "r", encoding="utf-8") as file:
                recorded = json.load(file)
            if partition_size is None:
                partition_size = int(recorded.get("partition_size", DEFAULT_PARTITION_SIZE))
            wanted = _job_record(job_manifest, partition_size, constitution_hash, models, method)
            _check_same_job(recorded, wanted, job_path)
        else:
            if _committed_partitions(out):
                raise BatchError("%s holds part files but no job.json: not a job folder of imgjudge.batch" % out)
            partition_size = partition_size or DEFAULT_PARTITION_SIZE
            if partition_size < 1:
                raise BatchError("partition size must be >= 1, not %d" % partition_size)
            wanted = _job_record(job_manifest, partition_size, constitution_hash, models, method)
            write_atomically(job_path, (json.dumps(wanted, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        _remove_stale_temporaries(out)

        parts = partitions(job_manifest, partition_size)
        committed = _committed_partitions(out)
        pending = [index for index in range(len(parts)) if index not in committed]
        failed: List[Dict[str, Any]] = []
        judged_now = 0
        judging_seconds = 0.0
        worker_addresses: collections.Counter = collections.Counter()
        if pending:
            judged_now, failed, worker_addresses, judging_seconds = _run_on_dask(
                parts, pending, os.path.abspath(out), scheduler, local_workers, threads_per_worker,
                JudgePlugin(models, method, constitution_toml, constitution_source),
                _Progress(len(pending), sum(len(parts[index]) for index in pending), progress, stream))
        elapsed = time.monotonic() - started
        this_run = {"partitions": len(pending), "skipped_committed_partitions": len(parts) - len(pending),
                    "images": judged_now, "seconds": round(elapsed, 3),
                    "images_per_second": round(judged_now / elapsed, 3) if elapsed > 0 else None,
                    # From the models loaded on every worker to the last partition: the steady rate.
                    "judging_seconds": round(judging_seconds, 3),
                    "judging_images_per_second":
                        round(judged_now / judging_seconds, 3) if judging_seconds > 0 else None,
                    "partitions_by_worker": dict(worker_addresses)}
        summary = _summarize(out, job_manifest, partition_size, failed, this_run)
        write_atomically(os.path.join(out, "summary.json"),
                         (json.dumps(summary.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8"))
        return summary
    finally:
        lock.close()


def _run_on_dask(parts: List[Tuple[Entry, ...]], pending: List[int], out_dir: str, scheduler: Optional[str],
                 workers: int, threads_per_worker: int, plugin: JudgePlugin, bar: _Progress):
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        # Worker processes, one model copy each; no dashboard (it needs bokeh).
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                               dashboard_address=None, host="127.0.0.1")
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        try:
            # Runs JudgePlugin.setup on every worker now (and on workers that join later);
            # distributed re-raises the first worker's exception here.
            client.register_worker_plugin(plugin, name=PLUGIN_NAME)
        except Exception as error:
            raise BatchError("a worker could not load the models: %s" % error) from error
        judging_started = time.monotonic()  # the models are loaded on every worker
        # One key per partition and job folder: a resubmitted job reuses no stale result.
        token = hashlib.sha256(out_dir.encode()).hexdigest()[:12]
        futures = {client.submit(judge_partition, index, parts[index], out_dir, pure=False, retries=1,
                                 key="imgjudge-partition-%s-%05d" % (token, index)): index
                   for index in pending}
        judged = 0
        failed: List[Dict[str, Any]] = []
        by_worker: collections.Counter = collections.Counter()
        for future in as_completed(futures):
            index = futures[future]
            if future.status == "finished":
                result = future.result()
                judged += result["images"]
                by_worker[result["worker"]] += 1
                bar.update(result["images"], result["errors"])
            else:
                error = future.exception()
                failed.append({"partition": index, "images": len(parts[index]),
                               "error": "%s: %s" % (type(error).__name__, error)})
                bar.update(0, 0, failed=True)
            # Forget the result on the cluster: were its worker to die later, Dask would
            # otherwise recompute a partition that is committed already.
            future.release()
        bar.close()
        return judged, failed, by_worker, time.monotonic() - judging_started
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m imgjudge.batch",
        description="Judge a manifest of images on a Dask cluster into DIR/part-*.jsonl, resumably.",
        epilog="exit status: 0 every image judged; 3 every image has a result but some are errors "
               "(recorded with their code); 1 some partitions failed (rerun with --resume); "
               "2 usage or setup error. See docs/scaling.md.")
    parser.add_argument("manifest", help="text file of paths, CSV with a 'path' column, JSON lines, or a folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="job folder for the results")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="a running Dask scheduler")
    where.add_argument("--workers", type=int, metavar="N", help="local worker processes (default 1)")
    parser.add_argument("--threads-per-worker", type=int, default=1, metavar="N",
                        help="images judged at once in each local worker (default 1)")
    parser.add_argument("--partition-size", type=int, metavar="N",
                        help="images per partition (default %d)" % DEFAULT_PARTITION_SIZE)
    parser.add_argument("--resume", action="store_true", help="continue the job in DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    model = parser.add_argument_group("models (as imgjudge judge)")
    model.add_argument("--backend", default="torch", help="torch (default) or scripted")
    model.add_argument("--model", metavar="DIR", help="Hugging Face folder of the vision-language model")
    model.add_argument("--relevance-model", metavar="DIR", help="CLIP/SigLIP folder (optional)")
    model.add_argument("--locator-model", metavar="DIR", help="OWLv2/OWL-ViT folder (optional)")
    model.add_argument("--script", metavar="FILE", help="answer script of the scripted backend")
    model.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    model.add_argument("--dtype", default="auto", help="auto (default), float32, bfloat16 or int8")
    model.add_argument("--threads", type=int, default=0, metavar="N",
                       help="intra-op threads per worker (default: cores / workers locally, all cores remotely)")
    model.add_argument("--image-memory-mb", type=int, default=0, metavar="N",
                       help="memory one image may take in the model")
    method = parser.add_argument_group("constitution and method (as imgjudge judge)")
    method.add_argument("--constitution", metavar="FILE", help="TOML rules (default: the bundled default)")
    for stage in ("relevance", "debias", "chains", "cascade", "early-exit", "locator"):
        method.add_argument("--no-" + stage, action="store_true", help="switch %s off" % stage.replace("-", " "))
    method.add_argument("--reasoning-tokens", type=int, metavar="N", help="budget of each reasoning turn")
    method.add_argument("--timeout-ms", type=int, metavar="N", help="per-image deadline")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    models = ModelSettings(model_dir=args.model, relevance_model_dir=args.relevance_model,
                           locator_model_dir=args.locator_model, backend=args.backend, script=args.script,
                           device=args.device, dtype=args.dtype, threads=args.threads,
                           image_memory_mb=args.image_memory_mb)
    method = MethodSettings(relevance=not args.no_relevance, debias=not args.no_debias,
                            chains=not args.no_chains, cascade=not args.no_cascade,
                            early_exit=not args.no_early_exit, locator=not args.no_locator,
                            reasoning_tokens=args.reasoning_tokens, deadline_ms=args.timeout_ms or None)
    try:
        summary = run(args.manifest, args.out, scheduler=args.scheduler, workers=args.workers,
                      threads_per_worker=args.threads_per_worker, constitution=args.constitution,
                      models=models, method=method, partition_size=args.partition_size, resume=args.resume,
                      progress=not args.no_progress)
    except (BatchError, ImgjudgeError, OSError) as error:
        print("imgjudge.batch: error: %s" % error, file=sys.stderr)
        return 2
    _print_summary(summary, args.out, sys.stderr)
    if summary.failed_partitions or not summary.complete:
        return 1
    return 3 if summary.errors else 0


def _print_summary(summary: Summary, out: str, stream: IO[str]) -> None:
    run_info = summary.this_run
    print("imgjudge.batch: %d of %d images have results in %s (%d of %d partitions)"
          % (summary.results, summary.images, out, summary.committed_partitions, summary.partitions), file=stream)
    print("  decisions: %s" % (", ".join("%s %d" % item for item in summary.decisions.items()) or "none"),
          file=stream)
    print("  errors: %s" % (", ".join("%s %d" % item for item in summary.errors.items()) or "none"), file=stream)
    print("  this run: %d images in %.1f s (%s images/s; %s images/s once the models were loaded), "
          "%d committed partitions skipped"
          % (run_info.get("images", 0), run_info.get("seconds", 0.0), run_info.get("images_per_second"),
             run_info.get("judging_images_per_second"), run_info.get("skipped_committed_partitions", 0)),
          file=stream)
    for failure in summary.failed_partitions:
        print("  FAILED partition %d (%d images): %s" % (failure["partition"], failure["images"], failure["error"]),
              file=stream)
    if summary.failed_partitions:
        print("  rerun with --resume to judge the failed partitions", file=stream)


if __name__ == "__main__":
    # Run the main() of the module imported under its real name: Dask pickles the task
    # function and the plugin by module name, and workers import imgjudge.batch, not __main__.
    from imgjudge.batch import main as _main

    sys.exit(_main())
