#!/bin/bash
# Checkpoint/resume of rlfr.train is bit-exact (docs/checkpoints.md), on
# tests/resume_graph.lua (parameters + AdamW moments, a step-keyed data RNG and
# a dataset cursor that crosses epochs):
#   A  N steps straight;
#   B  killed (SIGKILL) right after step 25 (checkpoints at 10, 20), resumed to N;
#   C  killed in the middle of writing checkpoint 30 (its .tmp directory half
#      written), resumed from checkpoint 20 to N;
# then final weights and node state (files of the last checkpoint) are
# byte-identical and every metrics.jsonl line is identical but for the
# wall-clock field "wall". Also: the checkpoint left by a kill is complete,
# a different --seed or a corrupt checkpoint is a clear error, and
# resume = false starts over.
# usage: bash test_resume.sh RLFR_BINARY SOURCE_DIR
set -u
. "$(dirname "$0")/lib.sh" "$@"
G="$SRC/tests/resume_graph.lua"
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT
run() { # run OUT [extra args...]: the graph with 40 steps, checkpoints every 10
    local out=$1
    shift
    "$RLFR" run "$G" --threads 1 --seed 3 --set out="$out" "$@"
}
strip() { sed 's/"wall":[^,}]*[,]*//' "$1"; }
same_run() { # same_run DIR_A DIR_B what
    if ! cmp -s <(strip "$1/metrics.jsonl") <(strip "$2/metrics.jsonl"); then
        fail "$3: metrics.jsonl differs"
        diff <(strip "$1/metrics.jsonl") <(strip "$2/metrics.jsonl") | head -n 6
    fi
    [ "$(wc -l <"$2/metrics.jsonl")" -eq 40 ] || fail "$3: metrics.jsonl has $(wc -l <"$2/metrics.jsonl") lines, not 40"
    for f in params-00-mlp.safetensors state.safetensors; do
        cmp -s "$1/ckpt-00000040/$f" "$2/ckpt-00000040/$f" || fail "$3: final $f differs"
    done
}

# A: straight.
run A >A.out 2>A.err || { fail "straight run failed"; cat A.out A.err; }
[ -s A.err ] && { fail "straight run wrote to stderr"; cat A.err; }
[ "$(cat A/latest)" = "ckpt-00000040" ] || fail "A/latest is '$(cat A/latest)'"
[ -d A/ckpt-00000030 ] && [ ! -d A/ckpt-00000020 ] || fail "keep = 2 did not prune: $(ls A | tr '\n' ' ')"

# B: SIGKILL right after step 25, then resume.
RLFR_TEST_KILL_AFTER_STEP=25 run B >B1.out 2>B1.err
rc=$?
[ $rc -eq 137 ] || fail "B: expected death by SIGKILL (137), got $rc"
[ "$(cat B/latest)" = "ckpt-00000020" ] || fail "B: latest after the kill is '$(cat B/latest)'"
[ "$(wc -l <B/metrics.jsonl)" -eq 25 ] || fail "B: $(wc -l <B/metrics.jsonl) metrics lines before resume, not 25"
run B >B2.out 2>B2.err || { fail "B: resume failed"; cat B2.out B2.err; }
grep -q "resuming 'resume' from .*ckpt-00000020 (step 20 of 40)" B2.err || { fail "B: no resume notice"; cat B2.err; }
same_run A B "kill after step 25"
# The script's own summary (first/last records) is the same too.
[ "$(grep first= A.out)" = "$(grep first= B2.out)" ] || fail "B: run summary differs: $(grep first= B2.out)"

# C: SIGKILL while checkpoint 30 is being written (the writer sleeps after
# each file; we kill once its first file exists).
RLFR_TEST_SLOW_CKPT=2@30 run C >C1.out 2>C1.err &
pid=$!
for _ in $(seq 1 300); do
    [ -f C/ckpt-00000030.tmp/params-00-mlp.safetensors ] && break
    sleep 0.05
done
[ -f C/ckpt-00000030.tmp/params-00-mlp.safetensors ] || fail "C: checkpoint 30 was never being written"
kill -9 "$pid"
{ wait "$pid"; } 2>/dev/null
pid=
[ -d C/ckpt-00000030.tmp ] || fail "C: no half-written checkpoint directory"
[ -d C/ckpt-00000030 ] && fail "C: checkpoint 30 published although killed mid-write"
[ "$(cat C/latest)" = "ckpt-00000020" ] || fail "C: latest after the kill is '$(cat C/latest)'"
for f in params-00-mlp.safetensors state.safetensors trainer.json; do
    [ -s "C/ckpt-00000020/$f" ] || fail "C: previous checkpoint lacks $f"
done
run C >C2.out 2>C2.err || { fail "C: resume failed"; cat C2.out C2.err; }
grep -q "from .*ckpt-00000020 (step 20 of 40)" C2.err || { fail "C: did not resume from 20"; cat C2.err; }
same_run A C "kill during checkpoint write"
[ -d C/ckpt-00000030.tmp ] && fail "C: stale .tmp directory left after the resumed run"

# A finished run resumes to nothing and keeps its results.
cp A/metrics.jsonl A.metrics
run A >A2.out 2>A2.err || { fail "resume of a finished run failed"; cat A2.err; }
cmp -s A.metrics A/metrics.jsonl || fail "resuming a finished run changed metrics.jsonl"
[ "$(grep first= A.out)" = "$(grep first= A2.out)" ] || fail "finished run: summary differs: $(grep first= A2.out)"

# Another --seed is refused, naming both seeds.
if "$RLFR" run "$G" --threads 1 --seed 4 --set out=A >S.out 2>S.err; then fail "resume with another seed succeeded"; fi
grep -q "seed 3.*--seed 4" S.err || { fail "seed error unclear:"; cat S.err; }

# A corrupt checkpoint is a one-line error naming the file, not a crash.
mkdir -p D && cp -r A/ckpt-00000040 D/ && echo ckpt-00000040 >D/latest
head -c 100 A/ckpt-00000040/params-00-mlp.safetensors >D/ckpt-00000040/params-00-mlp.safetensors
if run D >D.out 2>D.err; then fail "corrupt checkpoint accepted"; fi
[ "$(wc -l <D.err)" -eq 1 ] && grep -q "^error: .*params-00-mlp.safetensors" D.err || { fail "corrupt checkpoint error:"; cat D.err; }

# resume = false (through a script option) starts over and clears old checkpoints.
sed 's/checkpoint_every = cfg.every,/checkpoint_every = cfg.every, resume = false,/' "$G" >fresh.lua
grep -q "resume = false" fresh.lua || fail "could not make fresh.lua"
"$RLFR" run fresh.lua --threads 1 --seed 4 --set out=A --set steps=40 >F.out 2>F.err || { fail "resume=false run failed"; cat F.err; }
grep -q resuming F.err && fail "resume = false resumed"
[ "$(strip A/metrics.jsonl | head -n 1)" = "$(strip A.metrics | head -n 1)" ] && fail "resume = false did not start over (same first line with another seed)"
[ "$(wc -l <A/metrics.jsonl)" -eq 40 ] || fail "resume = false: $(wc -l <A/metrics.jsonl) metrics lines"

test_finish test_resume
