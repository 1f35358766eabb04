// tokenizer.json loading: the bytes are written to <scratch>/tokenizer.json
// (Tokenizer::load reads a model folder; there is no in-memory entry point),
// loaded with TokenizerFormat::Fast, then used once: encode, tokens, decode.
// Seeds: tests/fuzz/corpus/tokenizer_json.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"
#include "tokenizer/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace imgjudge;
  static const fuzz::ScratchDir scratch;
  scratch.write("tokenizer.json", data, size);
  fuzz::expect_only_imgjudge_errors([&] {
    const auto tokenizer = tokenizer::Tokenizer::load(scratch.path(), tokenizer::TokenizerFormat::Fast);
    // A loaded tokenizer must handle ordinary text: errors here are bugs of
    // loading (a table it accepted but cannot use), so they are checked apart.
    const std::string text = "Hello world! 123 <|endoftext|> h\xC3\xA9llo  \n\tab";
    fuzz::expect_only_imgjudge_errors([&] {
      const auto ids = tokenizer.encode(text, true);
      (void)tokenizer.tokens(ids);
      (void)tokenizer.decode(ids, true);
      (void)tokenizer.decode(ids, false);
    });
    fuzz::require(tokenizer.id_end() >= tokenizer.vocab_size(), "id_end() < vocab_size()");
  });
  return 0;
}
