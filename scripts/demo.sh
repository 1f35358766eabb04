#!/usr/bin/env bash
# The main job: judge the bundled example images with the default constitution.
#
# Real models: set IMGJUDGE_MODEL to a Hugging Face vision-language model folder
# (e.g. a downloaded Qwen2-VL-2B-Instruct), optionally IMGJUDGE_RELEVANCE_MODEL
# to a CLIP folder (e.g. openai/clip-vit-base-patch16) and IMGJUDGE_LOCATOR_MODEL
# to an OWLv2 / OWL-ViT folder (e.g. google/owlv2-base-patch16-ensemble) for
# strategy 2. Without them, this uses models that carry no knowledge, and says
# so: a tiny random-weight model of the family IMGJUDGE_DEMO_FAMILY (qwen2_vl by
# default; llava, llava_next, llava_onevision) and a tiny random OWLv2 locator.
set -euo pipefail
cd "$(dirname "$0")/.."

imgjudge=build/src/cli/imgjudge
images=(examples/images/chelsea.png examples/images/coffee.png examples/images/rocket.jpg)

# Exit status 1 ("an image was judged unsafe") and 4 ("an image needs review")
# are verdicts, not failures.
judge() {
  local status=0
  "$imgjudge" judge "$@" || status=$?
  if ((status > 1 && status != 4)); then
    echo "demo: imgjudge judge failed with exit status $status" >&2
    exit "$status"
  fi
}

banner() {
  printf '\n%s\n' "================================================================================"
  printf '%s\n' "$@"
  printf '%s\n\n' "================================================================================"
}

if [[ -n "${IMGJUDGE_MODEL:-}" ]]; then
  args=(--model "$IMGJUDGE_MODEL")
  [[ -n "${IMGJUDGE_RELEVANCE_MODEL:-}" ]] && args+=(--relevance-model "$IMGJUDGE_RELEVANCE_MODEL")
  [[ -n "${IMGJUDGE_LOCATOR_MODEL:-}" ]] && args+=(--locator-model "$IMGJUDGE_LOCATOR_MODEL")
  banner "imgjudge demo: judging ${#images[@]} images with $IMGJUDGE_MODEL"
  judge "${args[@]}" "${images[@]}"
  exit 0
fi

random_dir=build/demo-models
family=${IMGJUDGE_DEMO_FAMILY:-qwen2_vl}
family_config="examples/demo/tiny-${family//_/-}.json"
if [[ ! -f "$family_config" ]]; then
  echo "demo: IMGJUDGE_DEMO_FAMILY=$family has no $family_config (qwen2_vl, llava, llava_next, llava_onevision)" >&2
  exit 2
fi
if "$imgjudge" make-random-model --help >/dev/null 2>&1 &&
   "$imgjudge" make-random-model --config "$family_config" \
       --tokenizer tests/data/tokenizers/qwen2 --out "$random_dir/$family" --seed 1 >/dev/null 2>&1 &&
   "$imgjudge" make-random-model --config examples/demo/tiny-owlv2.json \
       --tokenizer tests/data/tokenizers/clip --out "$random_dir/owlv2" --seed 1 >/dev/null 2>&1; then
  banner "WARNING: no real model configured (IMGJUDGE_MODEL is unset)." \
         "Judging with a TINY RANDOM-WEIGHT $family model generated in $random_dir/$family" \
         "and a tiny random OWLv2 locator for strategy 2 in $random_dir/owlv2" \
         "(relevance scanning off: a random CLIP would skip every rule):" \
         "the pipeline runs for real, but THE VERDICTS ARE MEANINGLESS." \
         "For real verdicts: IMGJUDGE_MODEL=/path/to/Qwen2-VL-2B-Instruct \\" \
         "  IMGJUDGE_RELEVANCE_MODEL=/path/to/clip-vit-base-patch16 \\" \
         "  IMGJUDGE_LOCATOR_MODEL=/path/to/owlv2-base-patch16-ensemble scripts/demo.sh"
  # Random CLIP embeddings would skip every rule; judge them all, with short reasoning turns.
  judge --model "$random_dir/$family" --locator-model "$random_dir/owlv2" --no-relevance \
    --reasoning-tokens 24 "${images[@]}"
  exit 0
fi

banner "WARNING: no real model configured (IMGJUDGE_MODEL is unset), and this build" \
       "cannot generate random-weight models yet: judging with the SCRIPTED backend," \
       "whose answers come from examples/demo/scripted-answers.toml." \
       "THE VERDICTS SHOW THE PIPELINE, NOT A MODEL'S JUDGEMENT." \
       "For real verdicts: IMGJUDGE_MODEL=/path/to/Qwen2-VL-2B-Instruct scripts/demo.sh"
judge --backend scripted --script examples/demo/scripted-answers.toml "${images[@]}"
