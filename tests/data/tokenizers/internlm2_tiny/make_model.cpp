// Trains the tiny InternLM2-style SentencePiece BPE model of tests/data/tokenizers/internlm2_tiny.
#include <sentencepiece_trainer.h>
#include <fstream>
#include <iostream>
int main(int argc, char** argv) {
  if (argc != 3) { std::cerr << "usage: train corpus.txt out_prefix\n"; return 2; }
  const std::string args = std::string("--input=") + argv[1] + " --model_prefix=" + argv[2] +
      " --model_type=bpe --vocab_size=420 --byte_fallback=true --character_coverage=1.0"
      " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --add_dummy_prefix=true"
      " --remove_extra_whitespaces=false --normalization_rule_name=identity --split_digits=true"
      " --user_defined_symbols=<|plugin|>,<|interpreter|>,<|action_end|>,<|action_start|>,<|im_end|>,<|im_start|>"
      " --num_threads=1 --seed_sentencepiece_size=100000 --minloglevel=1";
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  if (!status.ok()) { std::cerr << status.ToString() << "\n"; return 1; }
  return 0;
}
