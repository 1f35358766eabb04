"""Batch jobs on Dask: manifests, a real scheduler and workers, a worker killed mid-run, resume.

The scripted backend answers with a latency (docs/scripted-backend.md), so a job lasts
long enough for a worker to be killed while partitions are being judged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

import imgjudge
from imgjudge import batch
from conftest import HOSTILE_IMAGES, POLICY, PYTHON, python_env, script_text

IMAGES = 36
PARTITION_SIZE = 3
LATENCY_MS = 25


@pytest.fixture(scope="module")
def job_inputs(tmp_path_factory):
    """36 distinct PNGs (every fourth shows a "gun", every fifth a "cat") plus hostile entries,
    a text manifest of them (relative paths), and the script that answers for them."""
    root = tmp_path_factory.mktemp("job-inputs")
    (root / "images").mkdir()
    scripted = []
    rng = np.random.default_rng(3)
    for index in range(IMAGES):
        pixels = rng.integers(0, 256, size=(24 + index, 32, 3), dtype=np.uint8)
        name = "images/img-%02d.png" % index
        PIL.Image.fromarray(pixels, "RGB").save(root / name)
        if index % 4 == 0:
            scripted.append('[[images]]\nfile = "%s"\nscores = { "A gun is visible." = 0.95 }\n' % (root / name))
        elif index % 5 == 0:
            scripted.append('[[images]]\nfile = "%s"\nscores = { "A cat is visible." = 0.6 }\n'
                            'reasoning = { "A cat is visible." = \'{"rating": "Yes", "rationale": "a cat"}\' }\n'
                            % (root / name))
    (root / "script.toml").write_text(script_text(latency_ms=LATENCY_MS, extra_images="\n".join(scripted)))
    shutil.copy(HOSTILE_IMAGES / "jpeg_truncated_header.jpg", root / "images" / "truncated.jpg")
    (root / "images" / "notes.png").write_text("not an image\n")
    (root / "images" / "empty.png").write_bytes(b"")
    (root / "images" / "a-folder.png").mkdir()
    os.mkfifo(root / "images" / "fifo.png")
    paths = ["images/img-%02d.png" % index for index in range(IMAGES)]
    hostile = ["images/truncated.jpg", "images/notes.png", "images/missing.png", "images/a-folder.png",
               "images/fifo.png", "images/empty.png"]
    for position, path in zip((3, 10, 17, 24, 31, 38), hostile):
        paths.insert(position, path)
    (root / "manifest.txt").write_text("\n".join(paths) + "\n")
    return root


@pytest.fixture(scope="module")
def expected(job_inputs):
    """The sequential run: each manifest path's result, judged in this process."""
    manifest = batch.read_manifest(str(job_inputs / "manifest.txt"))
    with imgjudge.Models(backend="scripted", script=job_inputs / "script.toml") as models, \
            imgjudge.Constitution.from_file(POLICY) as policy, imgjudge.Judge(policy, models, relevance=False) as judge:
        return {record["path"]: _comparable(record)
                for record in batch.judge_entries(judge, manifest.entries, deadline_ms=None)}


def _comparable(record):
    record = dict(record)
    record.pop("timings_ms", None)  # the only field that varies run to run
    return record


def _results(out_dir):
    return {path: _comparable(record) for path, record in batch.read_results(str(out_dir)).items()}


def _settings(job_inputs, **overrides):
    # Relevance scanning off: the scripted relevance of 19 scripted images could not be unit vectors.
    return dict(constitution=str(POLICY), partition_size=PARTITION_SIZE, progress=False,
                method=batch.MethodSettings(relevance=False),
                models=batch.ModelSettings(backend="scripted", script=str(job_inputs / "script.toml")),
                **overrides)


# --- manifests -----------------------------------------------------------------------------------

def test_manifests_of_every_kind(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/x.png", "a/y.JPG", "b.webp", "README.md"):
        (tmp_path / name).write_text("")
    (tmp_path / "list.txt").write_text("b.webp\n\n  a/x.png  \n/abs/z.gif\n")
    (tmp_path / "list.csv").write_text("id,path\n1,b.webp\n2,a/x.png\n")
    (tmp_path / "list.jsonl").write_text('{"path": "b.webp", "id": 1}\n\n{"path": "a/x.png"}\n')
    for name, kind in (("list.txt", "text"), ("list.csv", "csv"), ("list.jsonl", "jsonl")):
        manifest = batch.read_manifest(str(tmp_path / name))
        assert manifest.kind == kind
        assert [entry.path for entry in manifest.entries][:2] == ["b.webp", "a/x.png"]
        assert manifest.entries[1].resolved == str(tmp_path / "a" / "x.png")  # relative to the manifest
    assert batch.read_manifest(str(tmp_path / "list.txt")).entries[2].resolved == "/abs/z.gif"
    folder = batch.read_manifest(str(tmp_path))
    assert folder.kind == "folder" and folder.skipped_files == 4  # README.md and the three lists
    assert [os.path.relpath(entry.path, tmp_path) for entry in folder.entries] == ["b.webp", "a/x.png", "a/y.JPG"] \
        or [os.path.relpath(entry.path, tmp_path) for entry in folder.entries] == ["a/x.png", "a/y.JPG", "b.webp"]
    assert folder.hash == batch.read_manifest(str(tmp_path)).hash  # deterministic


def test_bad_manifests_are_refused_with_the_place(tmp_path):
    (tmp_path / "bad.csv").write_text("file,id\nx.png,1\n")
    with pytest.raises(batch.BatchError, match=r"needs a 'path' column; its header is \['file', 'id'\]"):
        batch.read_manifest(str(tmp_path / "bad.csv"))
    (tmp_path / "bad.jsonl").write_text('{"path": "x.png"}\n{"file": "y.png"}\n')
    with pytest.raises(batch.BatchError, match=r"bad.jsonl:2: each line needs a \"path\" string"):
        batch.read_manifest(str(tmp_path / "bad.jsonl"))
    (tmp_path / "twice.txt").write_text("x.png\ny.png\nx.png\n")
    with pytest.raises(batch.BatchError, match="entry 3 repeats x.png"):
        batch.read_manifest(str(tmp_path / "twice.txt"))
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(batch.BatchError, match="lists no images"):
        batch.read_manifest(str(tmp_path / "empty.txt"))
    with pytest.raises(batch.BatchError, match="no-such.txt"):
        batch.read_manifest(str(tmp_path / "no-such.txt"))


# --- a real cluster, a killed worker --------------------------------------------------------------

class _Cluster:
    """A `dask scheduler` and two `dask worker` processes on 127.0.0.1, random ports."""

    def __init__(self, folder: Path):
        self.env = python_env()
        self.scheduler_file = folder / "scheduler.json"
        self.logs = folder
        self.processes = []
        self.scheduler = self._start("scheduler", ["-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                                   "--port", "0", "--no-dashboard",
                                                   "--scheduler-file", str(self.scheduler_file)])
        deadline = time.monotonic() + 30
        while not self.scheduler_file.exists():
            assert time.monotonic() < deadline and self.scheduler.poll() is None, self.log("scheduler")
            time.sleep(0.05)
        time.sleep(0.1)  # the file is written whole, then closed
        self.address = json.loads(self.scheduler_file.read_text())["address"]
        # No nanny: a killed worker stays dead, the job has to finish on the other one.
        self.workers = [self._start("worker-%d" % index,
                                    ["-m", "distributed.cli.dask_worker", "--scheduler-file", str(self.scheduler_file),
                                     "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                     "--name", "worker-%d" % index])
                        for index in range(2)]

    def _start(self, name, arguments):
        log = open(self.logs / (name + ".log"), "w")
        process = subprocess.Popen([PYTHON] + arguments, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    def log(self, name):
        return (self.logs / (name + ".log")).read_text()

    def wait_for_workers(self, count):
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(count, timeout=60)

    def close(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_a_job_survives_a_killed_worker_with_nothing_lost_or_doubled(job_inputs, expected, tmp_path):
    cluster = _Cluster(tmp_path)
    try:
        cluster.wait_for_workers(2)
        out = tmp_path / "out"
        killed = {}

        def kill_a_worker_mid_run():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                parts = list(out.glob("part-*.jsonl")) if out.exists() else []
                if parts:  # the job is under way: the first partition is committed
                    killed["committed_before"] = len(parts)
                    os.kill(cluster.workers[0].pid, signal.SIGKILL)
                    cluster.workers[0].wait()
                    return
                time.sleep(0.01)

        killer = threading.Thread(target=kill_a_worker_mid_run)
        killer.start()
        summary = batch.run(str(job_inputs / "manifest.txt"), str(out), scheduler=cluster.address,
                            **_settings(job_inputs))
        killer.join()
        partitions = -(-len(expected) // PARTITION_SIZE)
        assert 0 < killed["committed_before"] < partitions, "the kill did not land mid-run"
        assert cluster.workers[0].returncode == -signal.SIGKILL
        assert summary.complete and summary.failed_partitions == []
        assert summary.committed_partitions == partitions
        results = _results(out)  # raises if any image was judged twice
        assert results == expected
        assert sum(1 for name in os.listdir(out) if name.startswith("part-")) == partitions
        assert not [name for name in os.listdir(out) if ".tmp-" in name]
        assert summary.errors == {"invalid_image": 3, "io": 3}
        # Unsafe: every fourth image (a gun) and every other fifth (a cat, by reasoning).
        assert summary.decisions == {"safe": 21, "unsafe": 15}
        assert json.loads((out / "summary.json").read_text())["complete"] is True
    finally:
        cluster.close()


# --- resume -----------------------------------------------------------------------------------------

def test_a_killed_job_resumes_without_judging_anything_twice(job_inputs, expected, tmp_path):
    out = tmp_path / "out"
    command = [PYTHON, "-m", "imgjudge.batch", str(job_inputs / "manifest.txt"), "--out", str(out),
               "--workers", "1", "--backend", "scripted", "--script", str(job_inputs / "script.toml"),
               "--constitution", str(POLICY), "--partition-size", str(PARTITION_SIZE), "--no-progress",
               "--no-relevance"]
    job = subprocess.Popen(command, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("part-*.jsonl"))) < 2:
            assert job.poll() is None and time.monotonic() < deadline, job.stdout.read().decode()
            time.sleep(0.01)
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # the client, its local cluster and workers
        job.wait()
    committed = {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in out.glob("part-*.jsonl")}
    partitions = -(-len(expected) // PARTITION_SIZE)
    assert 2 <= len(committed) < partitions

    # Without --resume the folder is refused; with it, the rest is judged.
    assert batch.main(command[3:]) == 2
    assert batch.main(command[3:] + ["--resume"]) == 3  # complete, with the hostile files' errors recorded
    assert _results(out) == expected
    for name, identity in committed.items():  # committed partitions were not judged again
        path = out / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == identity
    summary = json.loads((out / "summary.json").read_text())
    assert summary["this_run"]["skipped_committed_partitions"] == len(committed)
    assert summary["this_run"]["partitions"] == partitions - len(committed)
    assert summary["complete"] and summary["results"] == len(expected)

    # A resume of nothing left judges nothing; another manifest or constitution is refused.
    assert batch.run(str(job_inputs / "manifest.txt"), str(out), resume=True,
                     **_settings(job_inputs)).this_run["partitions"] == 0
    shorter = tmp_path / "shorter.txt"
    shorter.write_text("\n".join((job_inputs / "manifest.txt").read_text().split("\n")[:-3]) + "\n")
    with pytest.raises(batch.BatchError, match=re.escape("cannot resume it with a different manifest")):
        batch.run(str(shorter), str(out), resume=True, **_settings(job_inputs))
    with pytest.raises(batch.BatchError, match="constitution_hash"):
        batch.run(str(job_inputs / "manifest.txt"), str(out), resume=True,
                  **dict(_settings(job_inputs), constitution=None))


def test_workers_that_cannot_load_the_models_stop_the_job_with_the_reason(job_inputs, tmp_path):
    with pytest.raises(batch.BatchError, match=r"a worker could not load the models: \[io\] .*no-such-script.toml: cannot open"):
        batch.run(str(job_inputs / "manifest.txt"), str(tmp_path / "out"), workers=1,
                  **dict(_settings(job_inputs),
                         models=batch.ModelSettings(backend="scripted", script=str(tmp_path / "no-such-script.toml"))))
