#!/bin/sh
# `imgjudge tokenize`: good lines -> ids and tokens, exit 0; a bad line ->
# {"error": ...} on its own line, the other lines still answered, exit 1.
# usage: tokenize_cli_test.sh IMGJUDGE_BINARY TOKENIZER_DIR
set -u
cli="$1"
model="$2"

out=$(printf '%s\n' '{"text": "Hello world"}' '{"text": "<|endoftext|>", "add_special_tokens": false}' |
      "$cli" tokenize --model "$model")
rc=$?
[ "$rc" -eq 0 ] || { echo "expected exit 0, got $rc: $out"; exit 1; }
echo "$out" | grep -qx '{"ids":\[15496,995\],"tokens":\["Hello","Ġworld"\]}' || { echo "bad answer: $out"; exit 1; }
echo "$out" | grep -qx '{"ids":\[50256\],"tokens":\["<|endoftext|>"\]}' || { echo "bad answer: $out"; exit 1; }

out=$(printf '%s\n' 'not json' '{"text": "ok"}' | "$cli" tokenize --model "$model")
rc=$?
[ "$rc" -eq 1 ] || { echo "expected exit 1 for a bad line, got $rc: $out"; exit 1; }
echo "$out" | head -1 | grep -q '^{"error":{"code":"invalid_argument","message":"line 1: invalid JSON' || { echo "no error line: $out"; exit 1; }
echo "$out" | tail -1 | grep -qx '{"ids":\[482\],"tokens":\["ok"\]}' || { echo "second line not answered: $out"; exit 1; }

"$cli" tokenize --model "$model/does-not-exist" </dev/null 2>/dev/null
rc=$?
[ "$rc" -eq 2 ] || { echo "expected exit 2 for a missing model, got $rc"; exit 1; }
echo "tokenize CLI: all checks passed"
