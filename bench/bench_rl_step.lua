-- rlfr side of bench/rl_step.sh: full RLFR steps of graphs/lib/rl_text.lua
-- (rollout of 16 prompts x 8 samples, verification, frozen forward + flow
-- scoring + shaping, one policy update and one flow update) on the tiny
-- configuration (vocab 512, hidden 128, 4 layers, 4 heads, 2 KV heads,
-- intermediate 384; flow width 128, depth 4), random weights.
-- Writes OUT/prompts.json (the prompts' token ids and answers) and
-- OUT/tokenizer.json for the PyTorch side, and prints per-step times.
-- --set shared_prefix=false runs the policy forwards without sharing each
-- prompt among its G samples (the layout before shared-prefix packing).
--   rlfr run bench/bench_rl_step.lua --out DIR [--set steps=3] [--threads 2]
local rlfr = require "rlfr"
local core = require "rlfr.core"
local dir = rlfr.args.script:match("^(.*)[/\\]") or "."
local L = dofile(dir .. "/../graphs/lib/rl_text.lua")

local opt = rlfr.config { steps = 3, batch = 16, group = 8, max_new = 64, vocab = 512, method = "rlfr",
                          shared_prefix = true }
local out = rlfr.args.out or "runs/bench_rl_step"
assert(core.mkdir_p(out))

local cfg = L.defaults(opt.method)
cfg.model, cfg.batch, cfg.group, cfg.max_new = "random", opt.batch, opt.group, opt.max_new
cfg.shared_prefix = opt.shared_prefix
cfg.micro.vocab, cfg.micro.hidden, cfg.micro.layers, cfg.micro.heads = opt.vocab, 128, 4, 4
cfg.micro.kv_heads, cfg.micro.intermediate, cfg.micro.flow_width, cfg.micro.flow_depth = 2, 384, 128, 4
cfg.micro.texts = 512
cfg.micro.sft_steps = 0 -- random weights: the step costs the same
local seed = cfg.seed + rlfr.args.seed
local m = L.random_model(cfg, out, seed)
local eos = m.tokenizer:token_id("<|im_end|>")
local g, refs = L.make_train(cfg, m, eos, seed)
g:output(refs.prompt.tokens)
g:output(refs.prompt.lengths)
g:output(refs.data.answer)
g:compile()

local function json_str(s) return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"' end

local phases = { "rollout", "score", "update" }
local sums, best = {}, {}
local tokens_total = 0
for step = 0, opt.steps do -- step 0 is a warm-up (first touch of every buffer)
  local t = {}
  for _, ph in ipairs(phases) do
    local t0 = core.clock()
    g:run(ph, step)
    t[ph] = core.clock() - t0
    if ph == "rollout" then
      local mt = g:metrics()
      if step > 0 then tokens_total = tokens_total + mt["sampler.response_len"] * cfg.batch * cfg.group end
    end
  end
  local total = t.rollout + t.score + t.update
  print(string.format("rlfr step %d: total=%.3fs rollout=%.3f score=%.3f update=%.3f", step, total, t.rollout,
                      t.score, t.update))
  if step == 0 then
    -- the prompts of the first step go to the PyTorch side
    local tk, ln, ans = g:read(refs.prompt.tokens), g:read(refs.prompt.lengths), g:read(refs.data.answer)
    local T, La = tk.shape[2], ans.shape[2]
    local rows = {}
    for b = 0, #ln - 1 do
      local ids = {}
      for k = 1, ln[b + 1] do ids[k] = tostring(tk[b * T + k]) end
      local bytes = {}
      for k = 1, La do
        local c = ans[b * La + k]
        if c == 0 then break end
        bytes[#bytes + 1] = string.char(c)
      end
      rows[#rows + 1] = string.format('{"ids":[%s],"answer":%s}', table.concat(ids, ","), json_str(table.concat(bytes)))
    end
    local f = assert(io.open(out .. "/prompts.json", "w"))
    f:write(string.format('{"eos":%d,"group":%d,"max_new":%d,"vocab":%d,"prompts":[%s]}\n', eos, cfg.group,
                          cfg.max_new, m.tokenizer:vocab_size(), table.concat(rows, ",")))
    f:close()
  else
    t.total = total
    for k, v in pairs(t) do
      sums[k] = (sums[k] or 0) + v
      best[k] = math.min(best[k] or math.huge, v)
    end
  end
end
local n = opt.steps
print(string.format("rlfr rl_step mean total=%.4f rollout=%.4f score=%.4f update=%.4f gen_tokens=%.0f threads=%d%s",
                    sums.total / n, sums.rollout / n, sums.score / n, sums.update / n, tokens_total / n,
                    rlfr.args.threads, opt.shared_prefix and "" or " unshared"))
