// Golden-fixture verification (`imgjudge verify-fixture DIR`, and a ctest that
// runs it on every fixture folder of tests/data). The folder kinds follow the
// fixtures' README:
//  * a model fixture: a HF model folder (config.json, model.safetensors) with
//    the call's inputs.safetensors and the reference outputs.safetensors;
//    optionally preprocess.safetensors, one image (`image`) or several
//    (`image_0`, `image_1`, ...) with the image processor's outputs;
//  * a judge fixture: a complete model folder with images and expected.json
//    (schema "judge-fixture/1"): every (image, statement) score and prior in
//    both answer-spelling definitions, the prompt ids and greedy generations.
// Torch-free interface: the CLI includes only this.
#pragma once

#include <string>
#include <vector>

namespace imgjudge::devtools {

struct TensorDiff {
  std::string name;
  double max_abs_diff = 0;  ///< Infinity when missing or of the wrong shape.
  std::string problem;      ///< Empty, or "not produced" / "shape [..] vs [..]" / "ids differ at ...".
  /// Compared exactly (ids, counts): any difference fails, whatever the tolerance.
  bool exact = false;
};

struct FixtureReport {
  std::string kind;        ///< "model" or "judge".
  std::string model_type;
  std::vector<TensorDiff> outputs;     ///< One per reference tensor (judge: per case and quantity).
  std::vector<TensorDiff> preprocess;  ///< Image-processor checks (empty if none).
  std::vector<std::string> notes;      ///< What was not checked, and why.
  bool passed(double tolerance) const;
};

/// Recognises the folder's kind and verifies it (float32, CPU, one thread, as
/// the references were made). Throws Error(InvalidArgument) for a folder that
/// is no fixture (naming what it lacks), Error(Unsupported) naming the
/// implemented families for an unknown model_type.
FixtureReport verify_fixture(const std::string& dir);

/// model_type values verify_fixture() can run.
std::vector<std::string> fixture_model_types();

}  // namespace imgjudge::devtools
