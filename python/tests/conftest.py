"""Shared fixtures of the Python tests.

Run by ctest (label python) with IMGJUDGE_LIBRARY (the built libimgjudge.so) and
IMGJUDGE_CLI (the built `imgjudge`, for make-random-model) in the environment,
and PYTHONPATH pointing at python/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE_DIR = Path(__file__).resolve().parents[2]
DEMO_IMAGES = SOURCE_DIR / "examples" / "images"
POLICY = Path(__file__).resolve().parent / "data" / "policy.toml"
HOSTILE_IMAGES = SOURCE_DIR / "tests" / "data" / "hostile" / "images"


def script_text(latency_ms: int = 0, extra_images: str = "") -> str:
    """A scripted-backend script for data/policy.toml over the demo images:
    rocket.jpg shows a gun (unsafe), chelsea.png maybe a cat (0.6: uncertain, then
    reasoning says No), coffee.png and unknown images nothing (0.2: rejected)."""
    return f"""
[defaults]
score = 0.2
prior = 0.5
relevance = 0.3
latency_ms = {latency_ms}

[[images]]
file = "{DEMO_IMAGES / 'rocket.jpg'}"
scores = {{ "A gun is visible." = 0.95 }}

[[images]]
file = "{DEMO_IMAGES / 'chelsea.png'}"
scores = {{ "A cat is visible." = 0.6 }}

[[images]]
file = "{DEMO_IMAGES / 'coffee.png'}"
{extra_images}
"""


@pytest.fixture(scope="session")
def imgjudge_module():
    import imgjudge

    return imgjudge


@pytest.fixture(scope="session")
def script_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("script") / "script.toml"
    path.write_text(script_text())
    return path


@pytest.fixture(scope="session")
def slow_script_path(tmp_path_factory) -> Path:
    """Every model call takes 40 ms (prepare, score, generate, embed)."""
    path = tmp_path_factory.mktemp("slow-script") / "script.toml"
    path.write_text(script_text(latency_ms=40))
    return path


@pytest.fixture(scope="session")
def scripted_models(imgjudge_module, script_path):
    with imgjudge_module.Models(backend="scripted", script=script_path) as models:
        yield models


@pytest.fixture(scope="session")
def policy(imgjudge_module):
    with imgjudge_module.Constitution.from_file(POLICY) as constitution:
        yield constitution


@pytest.fixture(scope="session")
def scripted_judge(imgjudge_module, policy, scripted_models):
    with imgjudge_module.Judge(policy, scripted_models) as judge:
        yield judge


def cli_path() -> str:
    cli = os.environ.get("IMGJUDGE_CLI")
    if not cli:
        pytest.skip("IMGJUDGE_CLI (the built imgjudge command) is not set; ctest sets it")
    return cli


def make_random_model(out_dir: Path, config: Path, tokenizer: str = "qwen2", seed: int = 7) -> Path:
    """A random-weight model folder written by `imgjudge make-random-model`."""
    result = subprocess.run(
        [cli_path(), "make-random-model", "--config", str(config), "--tokenizer",
         str(SOURCE_DIR / "tests" / "data" / "tokenizers" / tokenizer), "--out", str(out_dir), "--seed", str(seed)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out_dir


@pytest.fixture(scope="session")
def random_qwen2_vl(tmp_path_factory) -> Path:
    """The tiny Qwen2-VL of the CLI tests (hidden size 64, 2 layers, the real Qwen2 tokenizer)."""
    return make_random_model(tmp_path_factory.mktemp("models") / "qwen2-vl",
                             SOURCE_DIR / "examples" / "demo" / "tiny-qwen2-vl.json")


def python_env() -> dict:
    """The environment for child Python processes: this package and library."""
    env = dict(os.environ)
    package_dir = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = package_dir + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


PYTHON = sys.executable
