// Golden-fixture verification (`imgjudge verify-fixture DIR`, parity tests).
// A fixture folder holds a HF model (config.json, model.safetensors), the call's
// inputs.safetensors and the reference outputs.safetensors written by
// transformers. Torch-free interface: the CLI includes only this.
#pragma once

#include <string>
#include <vector>

namespace imgjudge::models {

struct TensorDiff {
  std::string name;
  double max_abs_diff = 0;  ///< Infinity when missing or of the wrong shape.
  std::string problem;      ///< Empty, or "not produced" / "shape [..] vs [..]".
};

struct FixtureReport {
  std::string model_type;
  std::vector<TensorDiff> outputs;     ///< One per tensor of outputs.safetensors.
  std::vector<TensorDiff> preprocess;  ///< preprocess.safetensors checks (empty if none).
  std::string preprocess_note;         ///< Why the preprocess check was skipped, if it was.
  bool passed(double tolerance) const;
};

/// Runs the family named by <dir>/config.json "model_type" on the fixture's
/// inputs (float32, CPU) and compares every reference tensor. When the folder
/// has preprocess.safetensors ({image [H,W,3] u8, pixel_values [1,3,h,w]}) and
/// a CLIP/SigLIP preprocessor_config.json, src/image's processor is checked too. Throws
/// Error(Unsupported) naming the implemented families for an unknown one.
FixtureReport verify_fixture(const std::string& dir);

/// model_type values verify_fixture() can run.
std::vector<std::string> fixture_model_types();

}  // namespace imgjudge::models
