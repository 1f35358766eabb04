#include "runtime/nn.hpp"

#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "imgjudge/error.hpp"

namespace imgjudge::runtime::nn {

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  return bias ? at::linear(x, weight, *bias) : at::linear(x, weight);
}

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  return at::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor x32 = x.to(at::kFloat);
  const at::Tensor normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

Activation activation(const std::string& hf_name) {
  if (hf_name == "gelu") return [](const at::Tensor& x) { return at::gelu(x); };
  if (hf_name == "gelu_pytorch_tanh" || hf_name == "gelu_new" || hf_name == "gelu_fast") {
    // gelu_new/gelu_fast are the same tanh formula, up to rounding.
    return [](const at::Tensor& x) { return at::gelu(x, "tanh"); };
  }
  if (hf_name == "quick_gelu") {
    // x * sigmoid(1.702 x), bit for bit, with one temporary instead of three.
    return [](const at::Tensor& x) { return (x * 1.702).sigmoid_().mul_(x); };
  }
  if (hf_name == "silu" || hf_name == "swish") return [](const at::Tensor& x) { return at::silu(x); };
  if (hf_name == "relu") return [](const at::Tensor& x) { return at::relu(x); };
  throw Error(ErrorCode::Unsupported, fmt::format("activation \"{}\" is not implemented "
                                                  "(gelu, gelu_pytorch_tanh, gelu_new, quick_gelu, silu, relu)",
                                                  hf_name));
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& additive_mask, double scale) {
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * scale;
  if (additive_mask.defined()) scores = scores + additive_mask;
  const at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  return at::matmul(probs, v);
}

namespace {
// torch.finfo(dtype).min: the "hidden" value of HF's additive masks.
double lowest_value(at::ScalarType dtype) {
  switch (dtype) {
    case at::kBFloat16: return -3.3895313892515355e38;
    case at::kHalf: return -65504.0;
    case at::kDouble: return std::numeric_limits<double>::lowest();
    default: return static_cast<double>(std::numeric_limits<float>::lowest());
  }
}
}  // namespace

at::Tensor causal_mask(int64_t length, at::ScalarType dtype, const at::Device& device) {
  const at::Tensor hidden = at::full({length, length}, lowest_value(dtype), at::TensorOptions().dtype(dtype).device(device));
  return at::triu(hidden, 1).view({1, 1, length, length});
}

at::Tensor padding_mask(const at::Tensor& attention_mask, at::ScalarType dtype) {
  const at::Tensor keep = attention_mask.to(at::kBool).view({attention_mask.size(0), 1, 1, attention_mask.size(1)});
  const auto options = keep.options().dtype(dtype);
  return at::where(keep, at::zeros({}, options), at::full({}, lowest_value(dtype), options));
}

at::Tensor split_heads(const at::Tensor& x, int64_t num_heads) {
  const int64_t batch = x.size(0), length = x.size(1);
  return x.view({batch, length, num_heads, x.size(2) / num_heads}).transpose(1, 2);
}

at::Tensor merge_heads(const at::Tensor& x) {
  const int64_t batch = x.size(0), heads = x.size(1), length = x.size(2), dim = x.size(3);
  return x.transpose(1, 2).reshape({batch, length, heads * dim});
}

at::Tensor l2_normalize(const at::Tensor& x) { return x / x.norm(2, {-1}, /*keepdim=*/true); }

}  // namespace imgjudge::runtime::nn
