#!/bin/bash
# `rlfr verify GOLD < response`: one case per reason and flag, plus usage errors.
# usage: bash test_cli_verify.sh RLFR_BINARY SOURCE_DIR
RLFR="$1"
fails=0
checks=0

# expect GOLD-ARGS... -- RESPONSE EXPECTED-FIRST-LINE
expect() {
    local args=() resp want
    while [ "$1" != "--" ]; do args+=("$1"); shift; done
    shift
    resp="$1"
    want="$2"
    checks=$((checks + 1))
    local got
    got=$(printf '%s' "$resp" | "$RLFR" verify "${args[@]}" 2>&1 | head -n 1)
    if [ "$got" != "$want" ]; then
        echo "FAIL: verify ${args[*]} <<< '$resp': got '$got', want '$want'"
        fails=$((fails + 1))
    fi
}

# expect_status STATUS STDERR-PATTERN ARGS...
expect_status() {
    local want="$1" pat="$2"
    shift 2
    checks=$((checks + 1))
    local err status
    err=$(printf 'x' | "$RLFR" verify "$@" 2>&1 >/dev/null)
    status=$?
    if [ "$status" != "$want" ] || ! grep -q -- "$pat" <<< "$err"; then
        echo "FAIL: verify $*: status $status (want $want), stderr '$err' (want /$pat/)"
        fails=$((fails + 1))
    fi
}

expect 69 -- '17-15=2. 2*3=6. 6+63=69. \boxed{69}' 'reward=1 reason=correct'
expect 69 -- '\boxed{68}' 'reward=0.5 reason=wrong'
expect 69 --partial 0 -- '\boxed{68}' 'reward=0 reason=wrong'
expect 69 --partial 0.25 -- '\boxed{68}' 'reward=0.25 reason=wrong'
expect 69 --truncated -- '\boxed{69}' 'reward=0 reason=truncated'
expect 69 -- 'it is 69' 'reward=0 reason=no_box'
expect 69 -- '\boxed{1}\boxed{2}\boxed{3}\boxed{4}\boxed{69}' 'reward=0 reason=too_many_boxes'
expect 69 -- '\boxed{69' 'reward=0 reason=bad_box'
expect '\frac{1}{2}' -- '\boxed{0.5}' 'reward=1 reason=correct'
expect '\left( 3, \frac{\pi}{2} \right)' -- 'so $\boxed{(3,\frac{\pi}{2})}$' 'reward=1 reason=correct'
expect '1,000' -- '\boxed{1000 \text{ dollars}}' 'reward=1 reason=correct'
# several golds, or a JSON list of them: any alternative counts
expect 5 7 -- '\boxed{7}' 'reward=1 reason=correct'
expect '["9.6\n", "9.60"]' -- '\boxed{9.6}' 'reward=1 reason=correct'
expect '["a", "b"]' -- '\boxed{c}' 'reward=0.5 reason=wrong'
# a gold that looks like JSON but is an interval stays one literal answer
expect '[1,2]' -- '\boxed{[1, 2]}' 'reward=1 reason=correct'
# vision rule
expect 7 --format vision -- '<think>3+4</think><answer>7</answer>' 'reward=1.5 reason=correct format=1'
expect 7 --format vision -- '<think>3+4</think><answer>8</answer>' 'reward=0.5 reason=wrong format=1'
expect 7 --format vision -- '<answer>7</answer>' 'reward=1 reason=correct format=0'
expect 7 --format vision --format-bonus 0.2 -- '<think>a</think><answer>7</answer>' 'reward=1.2 reason=correct format=1'
expect 7 --format vision -- 'no tags 7' 'reward=0 reason=no_answer format=0'

# --verbose shows what was compared
checks=$((checks + 1))
out=$(printf '%s' '\boxed{\dfrac12}' | "$RLFR" verify 0.5 --verbose)
if ! grep -q '^canonical: \\frac{1}{2}$' <<< "$out" || ! grep -q '^gold: 0.5 -> 0.5 (number)$' <<< "$out"; then
    echo "FAIL: --verbose output: $out"
    fails=$((fails + 1))
fi

# usage errors: status 2 and a one-line message
expect_status 2 'give the gold answer'
expect_status 2 "unknown flag '--partail'" 5 --partail 0
expect_status 2 "is not a number" 5 --partial abc
expect_status 2 "needs a number" 5 --partial
expect_status 2 "boxed or vision" 5 --format image
checks=$((checks + 1))
if ! "$RLFR" verify --help | grep -q 'usage: rlfr verify'; then
    echo "FAIL: --help"
    fails=$((fails + 1))
fi
checks=$((checks + 1))
if ! "$RLFR" --help | grep -q 'verify'; then
    echo "FAIL: rlfr --help does not list verify"
    fails=$((fails + 1))
fi

echo "test_cli_verify: $((checks - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
