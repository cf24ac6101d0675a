-- Evaluation of a model bundle: greedy pass@1 and sampled accuracy / pass@k on
-- the arithmetic task's test split or any JSONL file (problem, answer), with
-- a results table (results.md, results.json) in the run directory.
--   rlfr run graphs/eval.lua --set model=models/arith-tiny               # arith test split, n=512, k=8
--   rlfr run graphs/eval.lua --set model=M --set data=eval:math --set n=100
--   rlfr run graphs/eval.lua --set model=M --set data=my.jsonl --set k=4 --set samples=16
-- Greedy: one argmax decode per problem (pass@1). Sampled: `samples` draws
-- per problem at `temperature` (default samples = k); reported are the mean
-- accuracy of a sample and pass@k, the unbiased estimator
-- 1 - C(s-c, k)/C(s, k) of Chen et al. (2021) from s samples with c correct
-- (with s = k it is plain pass@k: at least one of the k samples is correct).
-- Lines printed: "accuracy=X greedy", "accuracy=X sampled", "pass@K=X".
local rlfr = require "rlfr"
local dir = rlfr.args.script:match("^(.*)[/\\]") or "."
local ev = dofile(dir .. "/lib/eval_text.lua")
local fmt = string.format

local cfg = rlfr.config {
  model = "models/arith-tiny",
  data = "arith",            -- "arith" or a JSONL path (or eval:NAME for shared/data/eval/NAME.jsonl)
  split = "test",            -- arith split
  n = 512,                   -- problems (the first n of the source)
  k = 8,                     -- pass@k
  samples = 0,               -- samples per problem (0: k); more than k gives the unbiased estimator
  temperature = 1.0,
  greedy = true,             -- also run greedy decoding
  max_new = 64,              -- most response tokens
  prompt_len = 512,          -- longest prompt in tokens (longer ones are cut)
  chunk = 128,               -- problems per sampler batch
  out = "runs/eval",
  task = { steps = 3, min_steps = 2, max_value = 30, max_factor = 9, ops = "+-*/", task_seed = 0 },
}
if cfg.n < 1 then error("eval: n must be at least 1", 0) end
if cfg.k < 1 then error("eval: k must be at least 1", 0) end
local samples = cfg.samples > 0 and cfg.samples or cfg.k
if samples < cfg.k then error(fmt("eval: samples (%d) must be at least k (%d)", samples, cfg.k), 0) end
local out = rlfr.args.out or cfg.out

local m = rlfr.load(cfg.model)
local is_arith = cfg.data == "arith"
local e = ev.new(m, {
  data = is_arith and "arith" or "jsonl", path = not is_arith and cfg.data or nil, split = cfg.split,
  n = cfg.n, chunk = cfg.chunk, max_new = cfg.max_new, prompt_len = cfg.prompt_len, task = cfg.task,
  seed = rlfr.args.seed,
})

local rows = {}
local results = { model = cfg.model, data = cfg.data, split = is_arith and cfg.split or nil, n = e.n,
                  seed = rlfr.args.seed, max_new = cfg.max_new }
if is_arith then results.task = cfg.task end
if cfg.greedy then
  local r = e:run { greedy = true }
  results.greedy = { accuracy = r.accuracy, correct = math.floor(r.accuracy * r.n + 0.5),
                     response_tokens = r.response_tokens }
  rows[#rows + 1] = { "greedy pass@1", r.accuracy, fmt("%d / %d", results.greedy.correct, r.n) }
  print(fmt("accuracy=%.4f greedy (%d/%d)", r.accuracy, results.greedy.correct, r.n))
end
local r = e:run { samples = samples, temperature = cfg.temperature }
local pk = ev.mean_pass_at_k(r, cfg.k)
results.sampled = { temperature = cfg.temperature, samples = samples, accuracy = r.accuracy, k = cfg.k,
                    pass_at_k = pk, response_tokens = r.response_tokens,
                    estimator = samples > cfg.k and "unbiased (Chen et al. 2021)" or "plain" }
rows[#rows + 1] = { fmt("sampled accuracy (T=%g, %d per problem)", cfg.temperature, samples), r.accuracy,
                    fmt("%d samples", r.n * samples) }
rows[#rows + 1] = { fmt("pass@%d (T=%g%s)", cfg.k, cfg.temperature, samples > cfg.k and ", unbiased" or ""), pk,
                    fmt("%d problems", r.n) }
print(fmt("accuracy=%.4f sampled (temperature %g, %d per problem)", r.accuracy, cfg.temperature, samples))
print(fmt("pass@%d=%.4f", cfg.k, pk))

ev.write_results(out, {
  model = cfg.model, n = e.n, max_new = cfg.max_new, rows = rows, results = results, script = "graphs/eval.lua",
  data = cfg.data .. (is_arith and fmt(" (%s split, %d-%d operations, numbers up to %d)", cfg.split,
                                       cfg.task.min_steps, cfg.task.steps, cfg.task.max_value) or ""),
})
