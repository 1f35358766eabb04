// SigLIP against transformers 4.50.3 (tests/data/parity/siglip, float32, 1 thread).
#include "torch_catch.hpp"

#include "models/siglip.hpp"
#include "parity_util.hpp"
#include "runtime/config.hpp"

using namespace imgjudge;

TEST_CASE("SigLIP parameter_specs include the pooling head unless vision_use_head is false", "[parity][siglip]") {
  auto parse = [](const char* vision_extra) {
    return models::siglip::parse_config(runtime::HfConfig(
        nlohmann::json::parse(std::string(R"({"text_config": {"hidden_size": 16, "num_hidden_layers": 1,
          "num_attention_heads": 2, "vocab_size": 30, "max_position_embeddings": 8, "intermediate_size": 8,
          "projection_size": 12}, "vision_config": {"hidden_size": 16, "num_hidden_layers": 2,
          "num_attention_heads": 4, "image_size": 24, "patch_size": 8, "intermediate_size": 8)") +
                              vision_extra + "}}"),
        "inline"));
  };
  std::map<std::string, std::vector<int64_t>> with_head;
  for (const auto& s : models::siglip::parameter_specs(parse(""))) with_head[s.name] = s.shape;
  CHECK(with_head.at("vision_model.head.attention.in_proj_weight") == std::vector<int64_t>{48, 16});
  CHECK(with_head.at("vision_model.embeddings.position_embedding.weight") == std::vector<int64_t>{9, 16});
  CHECK(with_head.at("text_model.head.weight") == std::vector<int64_t>{12, 16});
  CHECK(with_head.at("logit_bias") == std::vector<int64_t>{1});
  const auto without = models::siglip::parameter_specs(parse(R"(, "vision_use_head": false)"));
  CHECK(without.size() == with_head.size() - 11);  // probe, in_proj x2, out_proj x2, layernorm x2, mlp x4
}
