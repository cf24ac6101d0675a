#!/bin/bash
# `rlfr shapes`: writes N PNGs + data.jsonl whose answers verify with the
# multimodal rule; test and train dumps differ; usage errors exit 2.
# usage: bash test_cli_shapes.sh RLFR_BINARY SOURCE_DIR
RLFR="$1"
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$RLFR" shapes --out "$tmp/test" --n 3 --split test --seed 2 >/dev/null || fail "shapes --split test exited $?"
[ "$(ls "$tmp/test"/*.png 2>/dev/null | wc -l)" = 3 ] || fail "expected 3 PNGs"
[ "$(wc -l < "$tmp/test/data.jsonl")" = 3 ] || fail "expected 3 JSONL lines"
head -c 8 "$tmp/test/00000.png" | od -An -c | grep -q 'P   N   G' || fail "00000.png is not a PNG"
grep -q '"image":"00002.png"' "$tmp/test/data.jsonl" || fail "data.jsonl does not name 00002.png"
# the first record's solution verifies against its answer with the vision rule
line=$(head -n 1 "$tmp/test/data.jsonl")
answer=$(printf '%s' "$line" | sed 's/.*"answer":"\([^"]*\)".*/\1/')
solution=$(printf '%s' "$line" | sed 's/.*"solution":"\(.*\)","image".*/\1/')
got=$(printf '%s' "$solution" | "$RLFR" verify "$answer" --format vision | head -n 1)
[ "$got" = "reward=1.5 reason=correct format=1" ] || fail "solution does not verify: $got"
"$RLFR" shapes --out "$tmp/train" --n 3 --split train --seed 2 >/dev/null || fail "shapes --split train exited $?"
cmp -s "$tmp/test/00000.png" "$tmp/train/00000.png" && fail "train and test samples are identical"
# the same arguments write the same files
"$RLFR" shapes --out "$tmp/again" --n 3 --split test --seed 2 >/dev/null
cmp -s "$tmp/test/data.jsonl" "$tmp/again/data.jsonl" || fail "not deterministic"
for bad in "--n 0 --out $tmp/x" "--split dev --out $tmp/x" "--size 10x10 --out $tmp/x" "--n 2" "--bogus"; do
    # shellcheck disable=SC2086
    "$RLFR" shapes $bad >/dev/null 2>"$tmp/err"
    st=$?
    [ $st = 2 ] || fail "shapes $bad: exit $st, want 2"
    grep -q "error" "$tmp/err" || fail "shapes $bad: no error message"
done
[ $fails = 0 ] && echo "test_cli_shapes: ok"
exit $fails
