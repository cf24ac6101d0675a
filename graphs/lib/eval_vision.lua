-- Evaluation of a multimodal policy (policy + vision encoder) on the shapes
-- task or a JSONL / shard image set, shared by graphs/eval_vision.lua and
-- graphs/sft_vision.lua (docs/models.md, "The shipped model: shapes-tiny").
--
--   local ev = dofile(dir .. "/lib/eval_vision.lua")
--   local e = ev.new(model, { data = "shapes" | "jsonl" | "shards", path = ..., split = "test",
--                             n = 256, chunk = 64, max_new = 160, task = {...}, seed = 0 })
--   local r = e:run { greedy = true }                 -- one greedy sample per problem
--   local r = e:run { samples = 8, temperature = 1 }  -- 8 samples per problem
--   local r = e:run { greedy = true, mismatched = true } -- each problem with another problem's image
--   -- r.correct[i] = correct samples of problem i; r.format = share with the format right
--
-- model = { policy = <qwen2>, tokenizer = <tokenizer>, vision = <vit> } (what
-- rlfr.load returns for a multimodal bundle). The graph: image_dataset
-- (problems 0..n-1 in source order; patch and merge taken from the encoder)
-- -> tokenize (ChatML without a system turn, as graphs/sft_vision.lua trains)
-- -> vision_encoder (frozen) -> sampler with the image splice -> detokenize
-- (response only) -> verifier (kind "vision": the <answer> against the gold
-- answer; correct only when the response ended with <|im_end|>). Sample s of
-- a problem is drawn in run step s with the problem index keying the
-- sampler's streams, so results repeat exactly for a seed and do not depend
-- on the chunk size. The model objects are shared: an evaluation during
-- training sees the current weights. `mismatched` (shapes only: every image
-- has the same size, so the placeholder counts still agree) pairs each
-- question with the image of another problem of the same split: the
-- accuracy a model reaches without looking, to set against the real one.
local rlfr = require "rlfr"
local dir = rlfr.args.script:match("^(.*)[/\\]") or "."
local text = dofile(dir .. "/lib/eval_text.lua")
local M = { pass_at_k = text.pass_at_k, mean_pass_at_k = text.mean_pass_at_k, write_results = text.write_results }
local fmt = string.format

-- The shapes task's knobs the image_dataset node takes.
M.task_keys = { "width", "height", "min_shapes", "max_shapes", "kinds", "test_percent", "task_seed" }

-- Items in a file source: one batch of 1 advances the epoch metric by 1/size.
local function source_size(o)
  local g = rlfr.graph "eval-vision-probe"
  g:image_dataset { name = "data", task = o.data, path = o.path, batch = 1, shuffle = false }
  g:run(nil, 0)
  local e = g:metrics()["data.epoch"]
  if not e or e <= 0 then error(fmt("eval: cannot tell how many problems %s holds", o.path), 0) end
  return math.floor(1 / e + 0.5)
end

function M.new(model, o)
  local tok, policy, vit = model.tokenizer, model.policy, model.vision
  if not tok or not policy then error("eval: the model needs a policy and a tokenizer", 0) end
  if not vit then error("eval: the model has no vision encoder (vision.safetensors)", 0) end
  local eos = tok:token_id("<|im_end|>")
  if not eos then error("eval: the tokenizer has no <|im_end|> token (the chat template's end)", 0) end
  local pad = tok:token_id("<|image_pad|>")
  if not pad then error("eval: the tokenizer has no <|image_pad|> token", 0) end
  local vc = vit:config()
  local n = o.n
  local dopts = { name = "data", split = o.split or "test", shuffle = false, patch = vc.patch, merge = vc.merge }
  if o.data == "shapes" then
    dopts.task = "shapes"
    for _, k in ipairs(M.task_keys) do
      if o.task and o.task[k] ~= nil then dopts[k] = o.task[k] end
    end
    dopts.size = n
  elseif o.data == "jsonl" or o.data == "shards" then
    dopts.task, dopts.path = o.data, o.path
    local total = source_size(dopts)
    if n > total then n = total end
  else
    error(fmt("eval: data must be \"shapes\", \"jsonl\" or \"shards\", got '%s'", tostring(o.data)), 0)
  end
  if n < 1 then error("eval: no problems to evaluate", 0) end
  local chunk = math.min(o.chunk or 64, n)
  -- Every chunk must be full: the last one would wrap into the next epoch.
  while n % chunk ~= 0 do chunk = chunk - 1 end
  dopts.batch = chunk
  local max_new = o.max_new or 160

  local self = { n = n, chunk = chunk, graphs = {} }

  -- One graph per sampling mode (greedy or a temperature).
  function self.graph(mode, temperature, mismatched)
    local key = mode .. ":" .. tostring(temperature) .. (mismatched and ":mismatched" or "")
    if self.graphs[key] then return self.graphs[key] end
    local g = rlfr.graph("eval-vision-" .. mode)
    local d = g:image_dataset(dopts)
    local p = g:tokenize { name = "prompt", tokenizer = tok, system = "", max_len = o.prompt_len or 512 } (d.prompt)
    local img = d
    if mismatched then
      if dopts.task ~= "shapes" then error("eval: mismatched images need data = \"shapes\"", 0) end
      local o2 = { name = "other" }
      for k, v in pairs(dopts) do o2[k] = v end
      o2.name, o2.shuffle, o2.seed = "other", true, 7919
      img = g:image_dataset(o2)
    end
    local enc = g:vision_encoder { name = "vision", net = vit } { pixels = img.pixels, grid = img.grid }
    local s = g:sampler { name = "sampler", net = policy, group = 1, greedy = mode == "greedy",
                          temperature = mode == "greedy" and 1.0 or temperature, max_new = max_new,
                          stop = { eos }, seed = o.seed or 0, image_pad_id = pad }
                        { prompt = p.tokens, prompt_len = p.lengths, prompt_id = d.index, image_embeds = enc.embeds }
    local txt = g:detokenize { name = "text", tokenizer = tok, max_bytes = 8 * max_new + 64 }
                  (s.tokens, s.lengths, p.lengths)
    local v = g:verifier { name = "verify", kind = "vision", group = 1 } (txt, d.answer, s.finished)
    for _, t in ipairs { v.correct, v.reward, d.index, s.lengths, p.lengths } do g:output(t) end
    g:compile()
    local entry = { g = g, correct = v.correct, reward = v.reward, index = d.index, lengths = s.lengths,
                    plen = p.lengths }
    self.graphs[key] = entry
    return entry
  end

  -- r = e:run{ greedy = true } or e:run{ samples = k, temperature = t }
  function self:run(r)
    local samples = r.greedy and 1 or (r.samples or 1)
    local entry = self.graph(r.greedy and "greedy" or "sample", r.temperature or 1.0, r.mismatched)
    local correct, tokens, formatted = {}, 0, 0
    for i = 1, self.n do correct[i] = 0 end
    for s = 1, samples do
      for _ = 1, self.n // self.chunk do
        entry.g:run(nil, s - 1)
        local c, rw, idx = entry.g:read(entry.correct), entry.g:read(entry.reward), entry.g:read(entry.index)
        local len, plen = entry.g:read(entry.lengths), entry.g:read(entry.plen)
        for j = 1, #c do
          local i = idx[j] + 1
          correct[i] = correct[i] + (c[j] > 0.5 and 1 or 0)
          -- reward = accuracy (0/1) + format bonus (0/0.5)
          if rw[j] - (c[j] > 0.5 and 1 or 0) > 0.25 then formatted = formatted + 1 end
          tokens = tokens + len[j] - plen[j]
        end
      end
    end
    local total = 0
    for i = 1, self.n do total = total + correct[i] end
    local all = self.n * samples
    return { correct = correct, n = self.n, samples = samples, accuracy = total / all, format = formatted / all,
             response_tokens = tokens / all }
  end

  return self
end

return M
