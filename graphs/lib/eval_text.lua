-- Evaluation of a policy on text problems with verifiable answers, shared by
-- graphs/eval.lua and graphs/sft_text.lua (docs/models.md, "Evaluation").
--
--   local ev = dofile(dir .. "/lib/eval_text.lua")
--   local e = ev.new(model, { data = "arith" | "jsonl", path = ..., split = "test", n = 512,
--                             chunk = 128, max_new = 64, task = {...}, seed = 0 })
--   local r = e:run { greedy = true }                 -- one greedy sample per problem
--   local r = e:run { samples = 8, temperature = 1 }  -- 8 samples per problem
--   -- r.correct[i] = how many samples of problem i were correct; r.n, r.samples
--   ev.pass_at_k(n, c, k)                              -- unbiased pass@k estimator
--   ev.write_results(out, { ... })                     -- OUT/results.json + OUT/results.md
--
-- The graph is built once per model: dataset (problems 0..n-1 in source
-- order) -> tokenize (the chat template the policy was trained with) ->
-- sampler (one sample per row) -> detokenize (the response only) -> verifier.
-- Sample s of a problem is drawn in run step s with the problem index keying
-- the sampler's RNG streams, so results do not depend on the chunk size and
-- repeat exactly for a seed. The model object is shared, so an evaluation
-- during training sees the current weights.
local rlfr = require "rlfr"
local M = {}

local fmt = string.format

-- Problems in a JSONL source (rows the dataset node accepts): one batch of 1
-- advances the fractional epoch metric by 1/size.
local function source_size(path)
  local g = rlfr.graph "eval-probe"
  g:dataset { name = "data", task = "jsonl", path = path, batch = 1, shuffle = false }
  g:run(nil, 0)
  local e = g:metrics()["data.epoch"]
  if not e or e <= 0 then error(fmt("eval: cannot tell how many problems %s holds", path), 0) end
  return math.floor(1 / e + 0.5)
end

function M.new(model, o)
  local tok, policy = model.tokenizer, model.policy
  if not tok or not policy then error("eval: the model needs a policy and a tokenizer", 0) end
  local eos = tok:token_id("<|im_end|>")
  if not eos then error("eval: the tokenizer has no <|im_end|> token (the chat template's end)", 0) end
  local n = o.n
  local dopts = { name = "data", split = o.split or "test", shuffle = false }
  if o.data == "arith" then
    local t = o.task or {}
    dopts.task = "arith"
    for _, k in ipairs { "steps", "min_steps", "max_value", "max_factor", "ops", "task_seed" } do
      if t[k] ~= nil then dopts[k] = t[k] end
    end
    dopts.size = n
  elseif o.data == "jsonl" then
    dopts.task = "jsonl"
    dopts.path = o.path
    local total = source_size(o.path)
    if n > total then n = total end
  else
    error(fmt("eval: data must be \"arith\" or \"jsonl\", got '%s'", tostring(o.data)), 0)
  end
  if n < 1 then error("eval: no problems to evaluate", 0) end
  local chunk = math.min(o.chunk or 128, n)
  -- Every chunk must be full: the last one would wrap into the next epoch.
  while n % chunk ~= 0 do chunk = chunk - 1 end
  dopts.batch = chunk

  local self = { n = n, chunk = chunk, graphs = {}, dopts = dopts, o = o, eos = eos, model = model }

  -- One graph per sampling mode (greedy or a temperature).
  function self.graph(mode, temperature)
    local key = mode .. ":" .. tostring(temperature)
    if self.graphs[key] then return self.graphs[key] end
    local g = rlfr.graph("eval-" .. mode)
    local d = g:dataset(dopts)
    local p = g:tokenize { name = "prompt", tokenizer = tok, max_len = o.prompt_len or 512, truncate = true } (d.prompt)
    local s = g:sampler { name = "sampler", net = policy, group = 1, greedy = mode == "greedy",
                          temperature = mode == "greedy" and 1.0 or temperature, max_new = o.max_new or 64,
                          stop = { eos }, seed = o.seed or 0 }
                        { prompt = p.tokens, prompt_len = p.lengths, prompt_id = d.index }
    local txt = g:detokenize { name = "text", tokenizer = tok, max_bytes = 8 * (o.max_new or 64) + 64 }
                  (s.tokens, s.lengths, p.lengths)
    local v = g:verifier { name = "verify", group = 1 } (txt, d.answer, s.finished)
    g:output(v.correct)
    g:output(d.index)
    g:output(s.lengths)
    g:output(p.lengths)
    g:compile()
    local entry = { g = g, correct = v.correct, index = d.index, lengths = s.lengths, plen = p.lengths }
    self.graphs[key] = entry
    return entry
  end

  -- r = e:run{ greedy = true } or e:run{ samples = k, temperature = t }
  function self:run(r)
    local greedy = r.greedy
    local samples = greedy and 1 or (r.samples or 1)
    local entry = self.graph(greedy and "greedy" or "sample", r.temperature or 1.0)
    local correct, tokens = {}, 0
    for i = 1, self.n do correct[i] = 0 end
    local t0 = os.clock()
    for s = 1, samples do
      for _ = 1, self.n // self.chunk do
        entry.g:run(nil, s - 1)
        local c, idx = entry.g:read(entry.correct), entry.g:read(entry.index)
        local len, plen = entry.g:read(entry.lengths), entry.g:read(entry.plen)
        for j = 1, #c do
          local i = idx[j] + 1
          correct[i] = correct[i] + (c[j] > 0.5 and 1 or 0)
          tokens = tokens + len[j] - plen[j]
        end
      end
    end
    local total = 0
    for i = 1, self.n do total = total + correct[i] end
    return { correct = correct, n = self.n, samples = samples, accuracy = total / (self.n * samples),
             response_tokens = tokens / (self.n * samples), time_cpu = os.clock() - t0 }
  end

  return self
end

-- Unbiased pass@k from n samples with c correct (Chen et al. 2021):
-- 1 - C(n-c, k) / C(n, k), computed as a product to stay in range.
function M.pass_at_k(n, c, k)
  if n - c < k then return 1.0 end
  local p = 1.0
  for i = n - c + 1, n do p = p * (1.0 - k / i) end
  return 1.0 - p
end

-- Mean pass@k over problems of a run with `samples` samples each.
function M.mean_pass_at_k(r, k)
  local s = 0.0
  for i = 1, r.n do s = s + M.pass_at_k(r.samples, r.correct[i], k) end
  return s / r.n
end

-- OUT/results.json (the `results` table) and OUT/results.md: a title, the
-- data line, the metric table (rows of { metric, value, over }) and the
-- command that reproduces it. o = { model, data (text after "Data: "), n,
-- max_new, rows, results, script }. Shared by graphs/eval.lua and
-- graphs/eval_vision.lua.
function M.write_results(out, o)
  local core = require "rlfr.core"
  local ok, err = core.mkdir_p(out)
  if not ok then error(err, 0) end
  local f = assert(io.open(out .. "/results.json", "w"))
  f:write(rlfr.json_encode(o.results, 2), "\n")
  f:close()
  local md = {
    fmt("# Evaluation of %s", o.model), "",
    fmt("Data: %s, %d problems; seed %d; at most %d new tokens.", o.data, o.n, rlfr.args.seed, o.max_new), "",
    "| metric | value | over |", "|---|---|---|",
  }
  for _, row in ipairs(o.rows) do md[#md + 1] = fmt("| %s | %.4f | %s |", row[1], row[2], row[3]) end
  md[#md + 1] = ""
  local sets = {}
  for i, x in ipairs(rlfr.args.set or {}) do sets[i] = " --set " .. x end
  md[#md + 1] = fmt("Command: `rlfr run %s --seed %d%s`", o.script, rlfr.args.seed, table.concat(sets))
  f = assert(io.open(out .. "/results.md", "w"))
  f:write(table.concat(md, "\n"), "\n")
  f:close()
  print("results: " .. out .. "/results.md")
end

return M
