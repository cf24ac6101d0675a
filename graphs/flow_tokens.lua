-- Which response tokens the flow reward penalises (the paper's token analysis).
-- Runs the RLFR graph's rollout and score phases (no update) on `batches`
-- training batches of a bundle and counts, per token, how often it appears in
-- a response and how often the shaper gives it a flow reward (< 0).
--   rlfr run graphs/flow_tokens.lua --set model=models/arith-tiny       # start of RL
--   rlfr run graphs/flow_tokens.lua --set model=runs/rlfr_text/final    # end of RL
-- Every option of graphs/lib/rl_text.lua applies (flow.coef, flow.norm, ...).
-- Tokens are put in categories by their text: number (digits), operator
-- (+ - * / = ( ) and the like), format (LaTeX / \boxed / braces / tags),
-- word (letters), space (white space only), other. Writes OUT/flow_tokens.json and prints, per
-- category, its share of response tokens and of flow-penalised tokens, then
-- the most penalised tokens.
local rlfr = require "rlfr"
local dir = rlfr.args.script:match("^(.*)[/\\]") or "."
local L = dofile(dir .. "/lib/rl_text.lua")
local core = require "rlfr.core"
local fmt = string.format

local defaults = L.defaults("rlfr")
defaults.batches = 8 -- rollout batches (cfg.batch prompts x cfg.group samples each)
defaults.top = 20    -- most penalised tokens listed
local cfg = rlfr.config(defaults)
if cfg.batches < 1 then L.die("--set batches=%d: must be at least 1", cfg.batches) end
local out = rlfr.args.out or (cfg.out ~= "" and cfg.out) or "runs/flow_tokens"
local ok, merr = core.mkdir_p(out)
if not ok then L.die("%s", merr) end
local seed = cfg.seed + rlfr.args.seed
local m = L.load_model(cfg, out, seed)
if not m.flow then L.die("%s: the bundle has no flow (flow.safetensors): nothing to score with", cfg.model) end
local eos = m.tokenizer:token_id("<|im_end|>")
if not eos then L.die("%s: the tokenizer has no <|im_end|> token (the chat template's end)", cfg.model) end

local g, refs = L.make_train(cfg, m, eos, seed)
local s = refs.sampler
g:output(s.tokens)
g:output(s.mask)
g:output(refs.shaper.flow_reward)
g:output(refs.verify.reward)
g:compile()

local function category(text)
  if not text:find("%S") then return "space" end
  if text:find("^%s*%d+%s*$") then return "number" end
  if text:find("[\\{}<>|]") or text:find("boxed") then return "format" end
  if text:find("%a") then return "word" end
  if text:find("^[%s%+%-%*/=%(%)%.,:^×÷]+$") and text:find("%S") then return "operator" end
  return "other"
end

local seen, penalised, penalty, text_of = {}, {}, {}, {}
local cats = { "number", "operator", "format", "word", "space", "other" }
local cat_seen, cat_pen = {}, {}
for _, c in ipairs(cats) do cat_seen[c], cat_pen[c] = 0, 0 end
local n_resp, n_pen, correct_pen, correct_tok, wrong_pen, wrong_tok = 0, 0, 0, 0, 0, 0
for b = 0, cfg.batches - 1 do
  g:run("rollout", b)
  g:run("score", b)
  local tok, mask, fr, reward = g:read(s.tokens), g:read(s.mask), g:read(refs.shaper.flow_reward),
                                g:read(refs.verify.reward)
  local N, T = tok.shape[1], tok.shape[2]
  for r = 0, N - 1 do
    local correct = reward[r + 1] >= 1
    for t = 0, T - 1 do
      local i = r * T + t + 1
      if mask[i] > 0 then
        local id = tok[i]
        if not text_of[id] then text_of[id] = m.tokenizer:decode({ id }) end
        local c = category(text_of[id])
        seen[id] = (seen[id] or 0) + 1
        cat_seen[c] = cat_seen[c] + 1
        n_resp = n_resp + 1
        local p = fr[i] < 0
        if p then
          penalised[id] = (penalised[id] or 0) + 1
          penalty[id] = (penalty[id] or 0) + fr[i]
          cat_pen[c] = cat_pen[c] + 1
          n_pen = n_pen + 1
        end
        if correct then
          correct_tok = correct_tok + 1
          if p then correct_pen = correct_pen + 1 end
        else
          wrong_tok = wrong_tok + 1
          if p then wrong_pen = wrong_pen + 1 end
        end
      end
    end
  end
end

local function pct(a, b) return b > 0 and 100 * a / b or 0 end
print(fmt("model=%s batches=%d responses tokens=%d flow-penalised=%d (%.1f%%); penalised rate: correct responses "
          .. "%.1f%%, wrong %.1f%%", cfg.model, cfg.batches, n_resp, n_pen, pct(n_pen, n_resp),
          pct(correct_pen, correct_tok), pct(wrong_pen, wrong_tok)))
print("category   share of response tokens   share of penalised tokens   penalised rate")
for _, c in ipairs(cats) do
  print(fmt("%-9s  %24.1f%%  %25.1f%%  %14.1f%%", c, pct(cat_seen[c], n_resp), pct(cat_pen[c], n_pen),
            pct(cat_pen[c], cat_seen[c])))
end
local ids = {}
for id in pairs(penalised) do ids[#ids + 1] = id end
table.sort(ids, function(a, b) if penalised[a] ~= penalised[b] then return penalised[a] > penalised[b] end return a < b end)
print("most penalised tokens (count penalised / count in responses, mean flow reward when penalised):")
local top = {}
for k = 1, math.min(cfg.top, #ids) do
  local id = ids[k]
  top[k] = { id = id, text = text_of[id], category = category(text_of[id]), penalised = penalised[id],
             seen = seen[id], mean_reward = penalty[id] / penalised[id] }
  print(fmt("  %-14s %-9s %5d / %5d  %.5f", fmt("%q", text_of[id]), top[k].category, penalised[id], seen[id], top[k].mean_reward))
end

-- JSON by hand: a handful of flat records.
local function js(v)
  if type(v) == "string" then
    return '"' .. v:gsub('[%c"\\]', function(ch) return fmt("\\u%04x", ch:byte()) end) .. '"'
  end
  return (math.type(v) == "integer") and tostring(v) or fmt("%.6g", v)
end
local parts = {}
for _, c in ipairs(cats) do parts[#parts + 1] = fmt('%s:{"tokens":%d,"penalised":%d}', js(c), cat_seen[c], cat_pen[c]) end
local tops = {}
for k, t in ipairs(top) do
  tops[k] = fmt('{"id":%d,"text":%s,"category":%s,"penalised":%d,"seen":%d,"mean_reward":%s}', t.id, js(t.text),
                js(t.category), t.penalised, t.seen, js(t.mean_reward))
end
local f = assert(io.open(out .. "/flow_tokens.json", "w"))
f:write(fmt('{"model":%s,"batches":%d,"tokens":%d,"penalised":%d,"correct":{"tokens":%d,"penalised":%d},'
            .. '"wrong":{"tokens":%d,"penalised":%d},"categories":{%s},"top":[%s]}\n', js(cfg.model), cfg.batches,
            n_resp, n_pen, correct_tok, correct_pen, wrong_tok, wrong_pen, table.concat(parts, ","),
            table.concat(tops, ",")))
f:close()
print("written: " .. out .. "/flow_tokens.json")
