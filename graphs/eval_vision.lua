-- Evaluation of a multimodal bundle (policy + tokenizer + vision encoder):
-- greedy pass@1 and sampled accuracy / pass@k on the shapes task's test split
-- (or a JSONL / shard image set), scored with the multimodal rule (the
-- <answer> equals the gold answer, and the response ended), with a results
-- table (results.md, results.json) in the run directory.
--   rlfr run graphs/eval_vision.lua                                   # models/shapes-tiny, shapes test, n=256, k=8
--   rlfr run graphs/eval_vision.lua --set model=M --set data=shards --set path=data/shards --set n=100
-- The task settings default to the ones the bundle was trained on (its
-- rlfr.json recipe.data), so a model is evaluated on its own task; --set
-- task.max_shapes=6 etc. override them. Greedy: one argmax decode per
-- problem. Sampled: `samples` draws per problem at `temperature` (default
-- samples = k); pass@k by the unbiased estimator of Chen et al. (2021).
-- Mismatched (shapes, on by default): greedy again with each question paired
-- with another test problem's image: what the model gets right without
-- looking, to set against the real accuracy.
-- Lines printed: "accuracy=X greedy", "accuracy=X sampled", "pass@K=X".
local rlfr = require "rlfr"
local dir = rlfr.args.script:match("^(.*)[/\\]") or "."
local ev = dofile(dir .. "/lib/eval_vision.lua")
local fmt = string.format

local cfg = rlfr.config {
  model = "models/shapes-tiny",
  data = "shapes",           -- "shapes", "jsonl" or "shards" (with path)
  path = "",
  split = "test",            -- shapes split
  n = 256,                   -- problems (the first n of the source)
  k = 8,                     -- pass@k
  samples = 0,               -- samples per problem (0: k); more than k gives the unbiased estimator
  temperature = 1.0,
  greedy = true,             -- also run greedy decoding
  mismatched = true,         -- shapes: also greedy with every question paired with another problem's image
  max_new = 128,             -- most response tokens
  chunk = 64,                -- problems per sampler batch
  out = "runs/eval-vision",
  -- shapes task settings; unset ones come from the bundle's recipe (then the node's defaults)
  task = { width = 0, height = 0, min_shapes = 0, max_shapes = 0, kinds = 0, test_percent = -1, task_seed = -1 },
}
if cfg.n < 1 then error("eval_vision: n must be at least 1", 0) end
if cfg.k < 1 then error("eval_vision: k must be at least 1", 0) end
local samples = cfg.samples > 0 and cfg.samples or cfg.k
if samples < cfg.k then error(fmt("eval_vision: samples (%d) must be at least k (%d)", samples, cfg.k), 0) end
if cfg.data ~= "shapes" and cfg.path == "" then error("eval_vision: data = " .. cfg.data .. " needs a path", 0) end
local out = rlfr.args.out or cfg.out

local m = rlfr.load(cfg.model)
-- graphs/sft_vision.lua records its task as meta.recipe.data, the RL and flow
-- graphs as meta.data.
local trained = type(m.meta.data) == "table" and m.meta.data
  or type(m.meta.recipe) == "table" and type(m.meta.recipe.data) == "table" and m.meta.recipe.data or {}
local task = {}
for _, k in ipairs(ev.task_keys) do
  local v = cfg.task[k]
  local unset = (k == "test_percent" or k == "task_seed") and v < 0 or (k ~= "test_percent" and k ~= "task_seed" and v == 0)
  if unset then v = trained[k] end
  task[k] = v
end
local e = ev.new(m, { data = cfg.data, path = cfg.path ~= "" and cfg.path or nil, split = cfg.split, n = cfg.n,
                      chunk = cfg.chunk, max_new = cfg.max_new, task = task, seed = rlfr.args.seed })

local rows = {}
local results = { model = cfg.model, data = cfg.data, path = cfg.path ~= "" and cfg.path or nil,
                  split = cfg.data == "shapes" and cfg.split or nil, n = e.n, seed = rlfr.args.seed,
                  max_new = cfg.max_new, task = cfg.data == "shapes" and task or nil }
if cfg.greedy then
  local r = e:run { greedy = true }
  local c = math.floor(r.accuracy * r.n + 0.5)
  results.greedy = { accuracy = r.accuracy, correct = c, format = r.format, response_tokens = r.response_tokens }
  rows[#rows + 1] = { "greedy pass@1", r.accuracy, fmt("%d / %d", c, r.n) }
  rows[#rows + 1] = { "greedy format (<think>..</think><answer>..</answer>)", r.format, fmt("%d problems", r.n) }
  print(fmt("accuracy=%.4f greedy (%d/%d)", r.accuracy, c, r.n))
end
if cfg.greedy and cfg.mismatched and cfg.data == "shapes" then
  local r = e:run { greedy = true, mismatched = true }
  local c = math.floor(r.accuracy * r.n + 0.5)
  results.greedy_mismatched = { accuracy = r.accuracy, correct = c }
  rows[#rows + 1] = { "greedy pass@1, each question with another problem's image", r.accuracy, fmt("%d / %d", c, r.n) }
  print(fmt("accuracy=%.4f greedy with mismatched images (%d/%d)", r.accuracy, c, r.n))
end
local r = e:run { samples = samples, temperature = cfg.temperature }
local pk = ev.mean_pass_at_k(r, cfg.k)
results.sampled = { temperature = cfg.temperature, samples = samples, accuracy = r.accuracy, k = cfg.k,
                    pass_at_k = pk, format = r.format, response_tokens = r.response_tokens,
                    estimator = samples > cfg.k and "unbiased (Chen et al. 2021)" or "plain" }
rows[#rows + 1] = { fmt("sampled accuracy (T=%g, %d per problem)", cfg.temperature, samples), r.accuracy,
                    fmt("%d samples", r.n * samples) }
rows[#rows + 1] = { fmt("pass@%d (T=%g%s)", cfg.k, cfg.temperature, samples > cfg.k and ", unbiased" or ""), pk,
                    fmt("%d problems", r.n) }
print(fmt("accuracy=%.4f sampled (temperature %g, %d per problem)", r.accuracy, cfg.temperature, samples))
print(fmt("pass@%d=%.4f", cfg.k, pk))

local desc = cfg.data == "shapes"
  and fmt(" (%s split, %s-%s shapes, %s kinds, %sx%s)", cfg.split, tostring(task.min_shapes or 2),
          tostring(task.max_shapes or 6), tostring(task.kinds or 4), tostring(task.width or 112),
          tostring(task.height or 112))
  or (" " .. cfg.path)
ev.write_results(out, {
  model = cfg.model, data = cfg.data .. desc, n = e.n, max_new = cfg.max_new, rows = rows, results = results,
  script = "graphs/eval_vision.lua",
})
