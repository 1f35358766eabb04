// Tiny functional building blocks shared by every model family. Each one does
// exactly what the matching transformers module does in eval mode.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <ATen/core/Tensor.h>

namespace imgjudge::runtime::nn {

/// y = x W^T (+ b). x [..., in], weight [out, in], bias [out].
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias = std::nullopt);

/// nn.LayerNorm over the last dim.
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

/// RMSNorm as in Llama/Qwen2: normalise in float32, cast back, then scale.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

/// An activation by its HF `hidden_act` name: gelu, gelu_pytorch_tanh,
/// gelu_new, quick_gelu, silu/swish, relu. Throws Error(Unsupported) otherwise.
using Activation = std::function<at::Tensor(const at::Tensor&)>;
Activation activation(const std::string& hf_name);

/// softmax(q k^T * scale + mask) v, with the softmax in float32 (HF eager).
/// q [B, H, Lq, D], k/v [B, H, Lk, D]; `additive_mask` broadcastable to
/// [B, H, Lq, Lk] with 0 for visible and a large negative value for hidden
/// positions, or undefined for none. Returns [B, H, Lq, D].
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& additive_mask, double scale);

/// [1, 1, L, L] additive causal mask: 0 on and below the diagonal, the dtype's
/// lowest value above it (HF's _create_4d_causal_attention_mask).
at::Tensor causal_mask(int64_t length, at::ScalarType dtype, const at::Device& device);

/// [B, 1, 1, L] additive mask from a [B, L] 0/1 attention_mask (HF's
/// _prepare_4d_attention_mask): 0 where 1, the dtype's lowest value where 0.
at::Tensor padding_mask(const at::Tensor& attention_mask, at::ScalarType dtype);

/// [B, L, H*D] -> [B, H, L, D] and back.
at::Tensor split_heads(const at::Tensor& x, int64_t num_heads);
at::Tensor merge_heads(const at::Tensor& x);

/// x / ||x||_2 along the last dim (HF: x / x.norm(p=2, dim=-1, keepdim=True)).
at::Tensor l2_normalize(const at::Tensor& x);

}  // namespace imgjudge::runtime::nn
