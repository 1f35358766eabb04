"""The Python API over real model code: random-weight models from `imgjudge make-random-model`.

Their verdicts mean nothing; the pipeline, the inputs, the threads and the memory of
shared models are what is checked.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import PIL.Image
import pytest

import imgjudge
from conftest import DEMO_IMAGES, POLICY, PYTHON, SOURCE_DIR, make_random_model, python_env

ROCKET = DEMO_IMAGES / "rocket.jpg"
CAT = DEMO_IMAGES / "chelsea.png"


@pytest.fixture(scope="module")
def torch_judge(random_qwen2_vl):
    with imgjudge.Models(model_dir=random_qwen2_vl, dtype="float32", threads=1) as models, \
            imgjudge.Constitution.from_file(POLICY) as policy, \
            imgjudge.Judge(policy, models, relevance=False, reasoning_tokens=8) as judge:
        yield judge


def _scores(verdict):
    return [statement.score for rule in verdict.rules for item in rule.items for statement in item.statements]


def test_a_random_qwen2_vl_judges_paths_bytes_numpy_and_pil_alike(torch_judge):
    by_path = torch_judge.judge(CAT)
    assert by_path.decision in ("safe", "unsafe", "review")
    assert by_path.models["vlm"].startswith("qwen2_vl:")
    assert all(score is None or 0.0 <= score <= 1.0 for score in _scores(by_path))
    assert any(note.startswith("relevance scanning off") for note in by_path.notes)
    pil = PIL.Image.open(CAT)
    for image in (CAT.read_bytes(), np.asarray(pil.convert("RGB")), pil):
        verdict = torch_judge.judge(image)
        assert verdict.image == by_path.image
        assert verdict.decision == by_path.decision and verdict.violated == by_path.violated
        assert _scores(verdict) == pytest.approx(_scores(by_path), abs=1e-5)


def test_a_random_qwen2_vl_from_many_threads(torch_judge):
    images = [CAT, ROCKET] * 3
    alone = [torch_judge.judge(image) for image in images[:2]]
    many = list(torch_judge.judge_many(images, max_workers=3))
    for verdict, expected in zip(many, alone * 3):
        assert verdict.image == expected.image and verdict.decision == expected.decision
        assert _scores(verdict) == pytest.approx(_scores(expected), abs=1e-5)


# A Qwen2-VL whose weights are mostly its embedding and output matrices over the real
# Qwen2 vocabulary (151k x 256, twice): about 330 MB of float32 weights, enough for the
# copy a second load makes to stand out of the process's other memory.
MEMORY_MODEL_CONFIG = {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 16,
                       "num_key_value_heads": 4, "num_hidden_layers": 2}  # head_dim 16, as mrope_section

# Run in a fresh process, so that the resident set is this process's own: it loads
# the models once for two judges, or once per judge, and prints the RSS after each step.
MEMORY_PROBE = r"""
import json, sys, imgjudge

def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

model_dir, policy_path, mode = sys.argv[1:4]
policy = imgjudge.Constitution.from_file(policy_path)
default = imgjudge.Constitution.default()
steps = {"start": rss_mb()}
if mode == "shared":
    models = imgjudge.Models(model_dir=model_dir, dtype="float32", threads=1)
    steps["models"] = rss_mb()
    first = imgjudge.Judge(policy, models, relevance=False)
    steps["judge1"] = rss_mb()
    second = imgjudge.Judge(default, models, relevance=False)
    steps["judge2"] = rss_mb()
else:
    first = imgjudge.Judge(policy, imgjudge.Models(model_dir=model_dir, dtype="float32", threads=1),
                           relevance=False)
    steps["judge1"] = rss_mb()
    second = imgjudge.Judge(default, imgjudge.Models(model_dir=model_dir, dtype="float32", threads=1),
                            relevance=False)
    steps["judge2"] = rss_mb()
print(json.dumps(steps))
"""


def test_two_judges_over_one_models_hold_one_copy_of_the_weights(tmp_path):
    config = json.loads((SOURCE_DIR / "examples" / "demo" / "tiny-qwen2-vl.json").read_text())
    config.update(MEMORY_MODEL_CONFIG)
    config["vision_config"]["hidden_size"] = config["hidden_size"]  # the merger's output width
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    model_dir = make_random_model(tmp_path / "qwen2-vl-256", config_path)
    weights_mb = (model_dir / "model.safetensors").stat().st_size / 2**20
    assert weights_mb > 250

    def probe(mode):
        result = subprocess.run([PYTHON, "-c", MEMORY_PROBE, str(model_dir), str(POLICY), mode],
                                env=python_env(), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    shared, separate = probe("shared"), probe("separate")
    shared_mb = shared["judge2"] - shared["start"]
    separate_mb = separate["judge2"] - separate["start"]
    print("weights %.0f MB; one Models + two judges: +%.0f MB (%s); two loads: +%.0f MB (%s)"
          % (weights_mb, shared_mb, shared, separate_mb, separate))
    # One load holds the weights once; the second judge over it adds little (its priors and
    # prompts), while a second load adds a whole copy of the weights.
    assert shared_mb >= 0.9 * weights_mb
    assert shared["judge2"] - shared["judge1"] < 0.5 * weights_mb
    assert separate_mb - shared_mb > 0.8 * weights_mb
