#include "runtime/linear.hpp"

#include <algorithm>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/ivalue.h>
#include <fmt/format.h>

#include "imgjudge/error.hpp"

namespace imgjudge::runtime {
namespace {

// quantized::linear_prepack / linear_dynamic, found once. They are reached
// through the dispatcher because their packed-params class has no public
// C++ header in Debian's libtorch.
struct QuantizedOps {
  c10::OperatorHandle prepack, dynamic_linear;
};

const QuantizedOps& quantized_ops() {
  static const QuantizedOps ops = [] {
    const auto& engines = at::globalContext().supportedQEngines();
    if (std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) == engines.end()) {
      throw Error(ErrorCode::Unsupported, "int8 linear layers need libtorch's oneDNN quantized engine, "
                                          "which this libtorch build lacks");
    }
    // Process-wide: libtorch has one current quantized engine. imgjudge is its
    // only user in a judging process; Debian's default (QNNPACK) is far slower on x86.
    at::globalContext().setQEngine(at::QEngine::ONEDNN);
    auto& dispatcher = c10::Dispatcher::singleton();
    return QuantizedOps{dispatcher.findSchemaOrThrow("quantized::linear_prepack", ""),
                        dispatcher.findSchemaOrThrow("quantized::linear_dynamic", "")};
  }();
  return ops;
}

}  // namespace

struct Linear::PackedInt8 {
  c10::IValue params;  // LinearPackedParamsBase: int8 weight, its scales, the bias
};

Linear::Linear(at::Tensor weight, std::optional<at::Tensor> bias, LinearFormat format) {
  if (weight.dim() != 2 || (bias && (bias->dim() != 1 || bias->size(0) != weight.size(0)))) {
    throw Error(ErrorCode::Internal, "Linear: weight must be [out, in] and bias [out]");
  }
  out_features_ = weight.size(0);
  in_features_ = weight.size(1);
  if (format == LinearFormat::Dense || weight.is_meta()) {
    weight_ = std::move(weight);
    bias_ = std::move(bias);
    return;
  }
  if (!weight.device().is_cpu() || weight.scalar_type() != at::kFloat) {
    throw Error(ErrorCode::Unsupported, "int8 linear layers run on the CPU from float32 weights");
  }
  const QuantizedOps& ops = quantized_ops();
  // Symmetric per-output-channel scales: row max |w| maps to 127.
  const at::Tensor scales = weight.abs().amax(1).clamp_min(1e-12).div(127.0).to(at::kDouble);
  const at::Tensor quantized =
      at::quantize_per_channel(weight, scales, at::zeros({out_features_}, at::kLong), 0, at::kQInt8);
  std::vector<c10::IValue> stack{quantized, bias ? c10::optional<at::Tensor>(*bias) : c10::nullopt};
  ops.prepack.callBoxed(&stack);
  packed_ = std::make_shared<const PackedInt8>(PackedInt8{std::move(stack.at(0))});
}

at::Tensor Linear::operator()(const at::Tensor& x) const {
  if (!packed_) return bias_ ? at::linear(x, weight_, *bias_) : at::linear(x, weight_);
  // The oneDNN kernel takes 2-D float32 input: fold the leading dims.
  const at::Tensor rows = x.reshape({-1, in_features_}).to(at::kFloat).contiguous();
  std::vector<c10::IValue> stack{rows, packed_->params, /*reduce_range=*/false};
  quantized_ops().dynamic_linear.callBoxed(&stack);
  std::vector<std::int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = out_features_;
  return stack.at(0).toTensor().view(shape);
}

}  // namespace imgjudge::runtime
