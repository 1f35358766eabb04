"""The Python API over the scripted backend: inputs, verdicts, errors, threads, lifetimes."""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time

import numpy as np
import PIL.Image
import pytest

import imgjudge
from conftest import DEMO_IMAGES, HOSTILE_IMAGES, POLICY, PYTHON, python_env

ROCKET = DEMO_IMAGES / "rocket.jpg"
CAT = DEMO_IMAGES / "chelsea.png"
COFFEE = DEMO_IMAGES / "coffee.png"


# --- the library ------------------------------------------------------------------------

def test_library_is_loaded_and_its_version_checked():
    assert imgjudge.library_version() == "0.1.0"
    assert os.path.basename(imgjudge.library_path()).startswith("libimgjudge.so")


def _import_in_child(library: str) -> subprocess.CompletedProcess:
    env = python_env()
    env["IMGJUDGE_LIBRARY"] = library
    return subprocess.run([PYTHON, "-c", "import imgjudge"], env=env, capture_output=True, text=True, timeout=60)


def test_a_missing_library_is_an_import_error_that_says_what_to_do(tmp_path):
    result = _import_in_child(str(tmp_path / "libimgjudge.so"))
    assert result.returncode != 0
    assert "LibraryNotFoundError" in result.stderr
    assert "cannot load the library named by IMGJUDGE_LIBRARY" in result.stderr
    assert str(tmp_path / "libimgjudge.so") in result.stderr


def test_another_library_is_refused_at_import():
    result = _import_in_child("libc.so.6")
    assert result.returncode != 0
    assert "IncompatibleLibraryError" in result.stderr
    assert "has no imgjudge_version_number(): not libimgjudge" in result.stderr


# --- constitutions ----------------------------------------------------------------------

def test_constitutions_from_file_string_and_default():
    with imgjudge.Constitution.from_file(POLICY) as from_file, \
            imgjudge.Constitution.from_string(POLICY.read_text(), "policy") as from_string, \
            imgjudge.Constitution.default() as default:
        assert from_file.rule_ids == ("weapons.gun", "animals.cat")
        assert from_file.hash == from_string.hash
        assert from_file.hash.startswith("sha256:") and len(from_file.hash) == 7 + 64
        assert len(default) == 18
        assert default.hash != from_file.hash


def test_constitution_errors_name_the_place():
    with pytest.raises(imgjudge.InvalidConstitutionError) as caught:
        imgjudge.Constitution.from_string('schema_version = 1\nname = "x"\nversion = "1"\nbogus = 2\n', "policy-x")
    assert caught.value.code == "invalid_constitution" and caught.value.status == 2
    assert "policy-x:4:" in caught.value.message
    assert isinstance(caught.value, ValueError)
    with pytest.raises(imgjudge.IoError) as missing:
        imgjudge.Constitution.from_file("/nonexistent/policy.toml")
    assert "/nonexistent/policy.toml" in missing.value.message
    assert isinstance(missing.value, OSError)


# --- verdicts -----------------------------------------------------------------------------

def test_verdicts_are_typed_and_carry_the_json(scripted_judge, policy):
    rocket = scripted_judge.judge(ROCKET)
    assert rocket.unsafe and rocket.decision == "unsafe" and not rocket.safe
    assert rocket.violated == ("weapons.gun",)
    gun = rocket.rule("weapons.gun")
    assert gun.violated and gun.judged and gun.score == 1.0
    assert gun.items[0].outcome == "accepted"
    assert gun.items[0].statements[0].statement == "A gun is visible."
    assert gun.items[0].statements[0].score == pytest.approx(0.95)
    assert gun.items[0].statements[0].prior == pytest.approx(0.5)
    assert rocket.image.width == 640 and rocket.image.height == 427
    assert rocket.constitution.name == "python-test" and rocket.constitution.hash == policy.hash
    data = rocket.to_dict()
    assert data["schema"] == "imgjudge.verdict/2"
    assert data["violated_rules"] == ["weapons.gun"]
    assert rocket.json.startswith("{") and "\n" not in rocket.json
    assert [rule.id for rule in rocket.rules] == list(policy.rule_ids)
    with pytest.raises(KeyError):
        rocket.rule("no.such.rule")

    cat = scripted_judge.judge(CAT)  # uncertain (0.6), then reasoning answers "No"
    assert cat.safe and cat.violated == () and cat.review_rules == ()
    assert cat.rule("animals.cat").items[0].decided_by == "reasoning"
    assert scripted_judge.judge(COFFEE).safe


def test_an_uncertain_rule_without_reasoning_needs_review(policy, scripted_models):
    with imgjudge.Judge(policy, scripted_models, cascade=False) as judge:
        verdict = judge.judge(CAT)
    assert verdict.decision == "review" and verdict.needs_review and not verdict.unsafe and not verdict.safe
    assert verdict.review_rules == ("animals.cat",) and verdict.violated == ()
    assert any(note.startswith("cascaded reasoning off") for note in verdict.notes)


# --- inputs ---------------------------------------------------------------------------------

def test_path_bytes_numpy_and_pil_inputs_give_the_same_verdict(scripted_judge):
    for path in (ROCKET, CAT, COFFEE):
        by_path = scripted_judge.judge(path)
        data = path.read_bytes()
        pil = PIL.Image.open(path)
        pil.load()
        pixels = np.asarray(pil.convert("RGB"))
        inputs = [str(path), data, bytearray(data), memoryview(data), pixels, pil]
        for image in inputs:
            verdict = scripted_judge.judge(image)
            assert verdict == by_path, type(image)
            assert verdict.image.hash == by_path.image.hash
        assert by_path.image.hash != scripted_judge.judge(COFFEE if path != COFFEE else CAT).image.hash


def test_numpy_views_are_read_with_their_strides(scripted_judge):
    pixels = np.asarray(PIL.Image.open(CAT).convert("RGB"))
    window = pixels[10:200, 20:300]  # rows wider than the window: a stride larger than 3 * width
    flipped = pixels[:, ::-1]  # negative strides: copied
    assert scripted_judge.judge(window).image.hash == scripted_judge.judge(np.ascontiguousarray(window)).image.hash
    assert scripted_judge.judge(flipped).image.hash == scripted_judge.judge(flipped.copy()).image.hash
    assert scripted_judge.judge(window).image.width == 280


def test_a_pil_image_with_alpha_is_composited_as_its_file_is(scripted_judge, tmp_path):
    rgba = np.zeros((40, 50, 4), dtype=np.uint8)
    rgba[..., 0] = np.arange(50, dtype=np.uint8) * 5
    rgba[..., 1] = 200
    rgba[..., 3] = np.arange(40, dtype=np.uint8)[:, None] * 6
    image = PIL.Image.fromarray(rgba, "RGBA")
    path = tmp_path / "alpha.png"
    image.save(path)
    assert scripted_judge.judge(image).image.hash == scripted_judge.judge(path).image.hash


def test_inputs_of_the_wrong_kind_are_refused(scripted_judge):
    with pytest.raises(imgjudge.InvalidArgumentError, match=r"H x W x 3 uint8 RGB, not shape \(4, 4\)"):
        scripted_judge.judge(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(imgjudge.InvalidArgumentError, match="dtype float32"):
        scripted_judge.judge(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="not int"):
        scripted_judge.judge(42)
    with pytest.raises(imgjudge.InvalidArgumentError, match="size"):
        scripted_judge.judge(b"")


# --- errors -----------------------------------------------------------------------------------

def test_bad_images_raise_the_status_exception_with_the_library_message(scripted_judge, tmp_path):
    with pytest.raises(imgjudge.InvalidImageError) as not_image:
        scripted_judge.judge(b"this is not an image at all")
    assert not_image.value.code == "invalid_image" and not_image.value.status == 3
    assert not_image.value.message and str(not_image.value) == "[invalid_image] " + not_image.value.message

    with pytest.raises(imgjudge.InvalidImageError) as truncated:
        scripted_judge.judge(HOSTILE_IMAGES / "jpeg_truncated_header.jpg")
    assert "jpeg" in truncated.value.message.lower()

    with pytest.raises(imgjudge.IoError) as missing:
        scripted_judge.judge(tmp_path / "missing.png")
    assert str(tmp_path / "missing.png") in missing.value.message

    with pytest.raises(imgjudge.IoError) as folder:
        scripted_judge.judge(tmp_path)
    assert str(tmp_path) in folder.value.message

    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)  # never opened for reading: the library refuses what is not a regular file
    with pytest.raises(imgjudge.IoError):
        scripted_judge.judge(fifo)

    with pytest.raises(imgjudge.LimitExceededError) as huge:
        scripted_judge.judge(HOSTILE_IMAGES / "png_huge_dimensions.png")
    assert huge.value.code == "limit_exceeded"
    assert scripted_judge.judge(COFFEE).safe  # the judge is still usable


def test_each_thread_gets_its_own_error_message(scripted_judge, tmp_path):
    missing = [tmp_path / ("missing-%d.png" % index) for index in range(16)]
    inputs = [path for pair in zip(missing, [COFFEE] * 16) for path in pair]
    results = list(scripted_judge.judge_many(inputs, max_workers=8, return_exceptions=True))
    for image, result in zip(inputs, results):
        if image == COFFEE:
            assert isinstance(result, imgjudge.Verdict) and result.safe
        else:
            assert isinstance(result, imgjudge.IoError) and str(image) in result.message


def test_bad_model_options_are_refused_with_the_field_named(policy):
    with pytest.raises(imgjudge.InvalidArgumentError, match="nope"):
        imgjudge.Models(backend="nope")
    with pytest.raises(imgjudge.InvalidArgumentError, match="threads is -1"):
        imgjudge.Models(backend="scripted", threads=-1)
    with pytest.raises(imgjudge.InvalidArgumentError, match=r"threads is 1099511627776; it must be in"):
        imgjudge.Models(backend="scripted", threads=2**40)  # would wrap in a C int
    with pytest.raises(TypeError, match="threads must be an int"):
        imgjudge.Models(backend="scripted", threads="4")
    with pytest.raises((imgjudge.IoError, imgjudge.InvalidModelError)) as missing:
        imgjudge.Models(model_dir="/nonexistent/model")
    assert "/nonexistent/model" in missing.value.message
    with pytest.raises(imgjudge.InvalidArgumentError, match="script"):
        imgjudge.Models(backend="scripted")  # the scripted backend needs its script


def test_bad_judge_options_are_refused(policy, scripted_models):
    with pytest.raises(imgjudge.InvalidArgumentError, match="reasoning_tokens is 0"):
        imgjudge.Judge(policy, scripted_models, reasoning_tokens=0)
    with pytest.raises(TypeError, match="relevance must be a bool"):
        imgjudge.Judge(policy, scripted_models, relevance="no")
    with pytest.raises(TypeError, match="Constitution.from_file"):
        imgjudge.Judge(str(POLICY), scripted_models)
    with imgjudge.Judge(policy, scripted_models, max_image_pixels=1000) as small:
        with pytest.raises(imgjudge.LimitExceededError, match="1000"):
            small.judge(COFFEE)


# --- threads, deadlines, cancellation --------------------------------------------------------

@pytest.fixture(scope="module")
def slow_judge(policy, slow_script_path):
    with imgjudge.Models(backend="scripted", script=slow_script_path) as models, \
            imgjudge.Judge(policy, models) as judge:
        yield judge


def test_judge_many_runs_calls_in_parallel_and_keeps_the_order(slow_judge):
    images = [ROCKET, CAT, COFFEE] * 4
    started = time.monotonic()
    expected = [slow_judge.judge(image) for image in images[:3]]
    one_image = (time.monotonic() - started) / 3
    started = time.monotonic()
    verdicts = list(slow_judge.judge_many(images, max_workers=6))
    elapsed = time.monotonic() - started
    assert verdicts == expected * 4  # in input order
    # Sequentially this takes 12 x one_image; the latency is spent in the library with the
    # GIL released, so six threads overlap it (bounded loosely for a loaded machine).
    assert elapsed < 12 * one_image / 2.5, (elapsed, one_image)


def test_judge_many_raises_the_first_error_unless_asked_to_return_it(scripted_judge):
    inputs = [COFFEE, b"garbage", ROCKET]
    with pytest.raises(imgjudge.InvalidImageError):
        list(scripted_judge.judge_many(inputs, max_workers=2))
    results = list(scripted_judge.judge_many(inputs, max_workers=2, return_exceptions=True))
    assert results[0].safe and isinstance(results[1], imgjudge.InvalidImageError) and results[2].unsafe
    with pytest.raises(imgjudge.InvalidArgumentError, match="max_workers"):
        list(scripted_judge.judge_many(inputs, max_workers=0))


def test_judge_many_takes_a_lazy_iterable(scripted_judge):
    def images():
        for _ in range(50):
            yield COFFEE
    assert sum(1 for verdict in scripted_judge.judge_many(images(), max_workers=3) if verdict.safe) == 50


def test_a_deadline_ends_the_call_inside_the_library(slow_judge):
    started = time.monotonic()
    with pytest.raises(imgjudge.DeadlineExceededError) as late:
        slow_judge.judge(ROCKET, deadline_ms=15)
    assert time.monotonic() - started < 0.5
    assert late.value.code == "deadline_exceeded" and isinstance(late.value, TimeoutError)
    assert slow_judge.judge(ROCKET, deadline_ms=60_000).unsafe
    with pytest.raises(imgjudge.InvalidArgumentError, match="deadline_ms is 0"):
        slow_judge.judge(ROCKET, deadline_ms=0)


def test_a_cancel_token_stops_running_calls_from_another_thread(slow_judge):
    with imgjudge.CancelToken() as token:
        assert not token.cancelled
        timer = threading.Timer(0.1, token.cancel)
        timer.start()
        started = time.monotonic()
        results = list(slow_judge.judge_many([ROCKET] * 4, max_workers=4, cancel=token, return_exceptions=True))
        timer.join()
        assert token.cancelled
        assert all(isinstance(result, imgjudge.CancelledError) for result in results)
        assert time.monotonic() - started < 0.5
        with pytest.raises(imgjudge.CancelledError):  # cancelled for good
            slow_judge.judge(COFFEE, cancel=token)
    assert slow_judge.judge(COFFEE).safe


# --- lifetimes ----------------------------------------------------------------------------------

def test_models_and_constitution_may_be_closed_before_the_judge(script_path):
    constitution = imgjudge.Constitution.from_file(POLICY)
    models = imgjudge.Models(backend="scripted", script=script_path)
    judge = imgjudge.Judge(constitution, models)
    models.close()
    constitution.close()
    models.close()  # idempotent
    assert judge.judge(ROCKET).unsafe  # the judge holds the models and its copy of the rules
    with pytest.raises(ValueError, match="Models is closed"):
        imgjudge.Judge(imgjudge.Constitution.default(), models)
    judge.close()
    with pytest.raises(ValueError, match="Judge is closed"):
        judge.judge(ROCKET)
    assert judge.closed and repr(judge) == "Judge(2 rules, closed)"


def test_close_waits_for_running_calls(policy, slow_script_path):
    models = imgjudge.Models(backend="scripted", script=slow_script_path)
    judge = imgjudge.Judge(policy, models)
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.setdefault("verdict", judge.judge(ROCKET)))
    worker.start()
    time.sleep(0.05)  # the call is inside the library now
    judge.close()
    worker.join()
    assert outcome["verdict"].unsafe


def test_two_judges_share_one_models(script_path):
    with imgjudge.Models(backend="scripted", script=script_path) as models, \
            imgjudge.Constitution.from_file(POLICY) as mine, imgjudge.Constitution.default() as default, \
            imgjudge.Judge(mine, models) as first, imgjudge.Judge(default, models) as second:
        a, b = first.judge(ROCKET), second.judge(ROCKET)
        assert a.constitution.hash == mine.hash and b.constitution.hash == default.hash
        assert len(a.rules) == 2 and len(b.rules) == 18
        assert a.models["vlm"] == b.models["vlm"]


def test_errors_survive_pickling():
    import pickle

    error = imgjudge.InvalidImageError("bytes 0..4: unknown format")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is imgjudge.InvalidImageError and copy.message == error.message and copy.code == "invalid_image"


def test_the_package_builds_a_wheel_without_network(tmp_path):
    import shutil

    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources.
    package_dir = tmp_path / "package"
    shutil.copytree(os.path.dirname(os.path.dirname(os.path.abspath(imgjudge.__file__))), package_dir,
                    ignore=shutil.ignore_patterns("tests", "__pycache__", "build", "*.egg-info"))
    result = subprocess.run([PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                             "-w", str(tmp_path / "dist"), str(package_dir)],
                            capture_output=True, text=True, timeout=300, env=python_env(),
                            cwd=str(tmp_path))
    if result.returncode != 0 and "No module named pip" in result.stderr:
        pytest.skip("pip is not installed (Debian: python3-pip)")
    assert result.returncode == 0, result.stdout + result.stderr
    import zipfile

    wheels = list((tmp_path / "dist").glob("imgjudge-0.1.0-*.whl"))
    assert len(wheels) == 1
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    assert {"imgjudge/__init__.py", "imgjudge/batch.py", "imgjudge/py.typed"} <= names
