-- Offline flow training (RLFR, DESIGN.md section 2): expert solutions are
-- teacher-forced through the FROZEN policy, the hidden states of the tapped
-- layers on the response tokens become (target, context, tau) triples, and
-- the flow network learns their velocity field by flow matching (AdamW,
-- warmup + cosine). The flow is then saved into the model bundle, next to
-- the unchanged policy and tokenizer, with the recipe in rlfr.json.
--
--   rlfr run graphs/flow_offline.lua                                  # models/arith-tiny, in place
--   rlfr run graphs/flow_offline.lua --set model=path/to/bundle --set bundle_out=out/dir
--   rlfr run graphs/flow_offline.lua --set model=random --set steps=5  # micro model, no bundle needed
--
-- data = "arith" uses the task's expert solutions; a JSONL path uses its
-- `problem` and `solution` fields (a file whose first records have no
-- solution is an error). docs/flow.md ("Offline training") describes the options.
local rlfr = require "rlfr"
local fmt = string.format

local cfg = rlfr.config {
  model = "models/arith-tiny",  -- bundle directory or .tar.zst; "random": micro policy + tokenizer
  data = "arith",               -- "arith" or a JSONL file with problem/solution
  steps = 400,
  batch = 16,                   -- expert solutions per step
  lr = 1e-4,                    -- reference
  warmup = 20,
  min_lr = 0.0,
  weight_decay = 0.0,
  layers = { 0.25, 0.5, 0.75 }, -- tapped layer fractions (reference)
  context = "token_pre",        -- context modes, comma-separated: token_pre, token_post, identity
  shift = 1,
  width = 0,                    -- flow width (0: the policy's hidden size)
  depth = 4,
  batch_mul = 4,                -- (t, eps) draws per token (reference)
  max_len = 256,                -- tokens per teacher-forced sequence (longer ones are cut; the
                                -- arithmetic solutions need < 150; the arena grows with it)
  init = "new",                 -- "new": a fresh flow; "bundle": continue from the bundle's flow
  bundle_out = "",              -- where to save the bundle ("": the model's own directory; for
                                -- model=random: RUN/bundle)
  dtype = "f32",                -- policy weights in the saved bundle: f32 or bf16
  curve_points = 6,             -- loss-curve lines printed at the end
  task = { steps = 3, min_steps = 0, max_value = 30, max_factor = 9, ops = "+-*/", task_seed = 0 },
  micro = { hidden = 32, layers = 4, heads = 4, kv_heads = 2, intermediate = 64, vocab = 400, texts = 256 },
}

local seed = rlfr.args.seed
local run_dir = rlfr.args.out or "runs/flow_offline"

local function die(...) error(fmt(...), 2) end

local function dataset_opts(extra)
  local o
  if cfg.data == "arith" then
    o = { task = "arith", steps = cfg.task.steps, min_steps = cfg.task.min_steps, max_value = cfg.task.max_value,
          max_factor = cfg.task.max_factor, ops = cfg.task.ops, task_seed = cfg.task.task_seed }
  else
    o = { task = "jsonl", path = cfg.data }
  end
  for k, v in pairs(extra) do o[k] = v end
  return o
end

-- Rows of a u8 [R, L] graph output as strings (each up to its NUL).
local function rows_of(t)
  local R, L = t.shape[1], t.shape[2]
  local out = {}
  for r = 0, R - 1 do
    local parts, bytes = {}, {}
    for c = 1, L do
      local b = t[r * L + c]
      if b == 0 then break end
      bytes[#bytes + 1] = b
      if #bytes == 4096 then parts[#parts + 1] = string.char(table.unpack(bytes)); bytes = {} end
    end
    parts[#parts + 1] = string.char(table.unpack(bytes))
    out[#out + 1] = table.concat(parts)
  end
  return out
end

-- A micro Qwen2 policy and a BPE tokenizer trained on the task's texts, so
-- the graph runs before (or without) a trained bundle.
local function random_model()
  local mc = cfg.micro
  local tg = rlfr.graph "flow-offline-texts"
  local d = tg:dataset(dataset_opts { batch = mc.texts, seed = seed })
  tg:output(d.prompt)
  tg:output(d.solution)
  tg:run()
  local texts = rows_of(tg:read(d.prompt))
  for _, s in ipairs(rows_of(tg:read(d.solution))) do texts[#texts + 1] = s end
  texts[#texts + 1] = "Please reason step by step, and put your final answer within \\boxed{}."
  os.execute(fmt("mkdir -p '%s'", run_dir))
  local tok = rlfr.train_tokenizer {
    texts = texts, vocab_size = mc.vocab, min_frequency = 2,
    special = { "<|endoftext|>", "<|im_start|>", "<|im_end|>" }, out = run_dir .. "/tokenizer.json",
  }
  local policy = rlfr.new_policy {
    vocab_size = tok:vocab_size(), hidden_size = mc.hidden, num_hidden_layers = mc.layers,
    num_attention_heads = mc.heads, num_key_value_heads = mc.kv_heads, intermediate_size = mc.intermediate,
    max_position_embeddings = 4096, seed = seed,
  }
  return { policy = policy, tokenizer = tok, meta = { recipe = { policy = "random (flow_offline micro)", seed = seed } } }
end

-- JSONL files without solutions (the eval sets) leave nothing to train on.
if cfg.data ~= "arith" then
  local cg = rlfr.graph "flow-offline-check"
  local cd = cg:dataset(dataset_opts { batch = cfg.batch, seed = seed, shuffle = false })
  cg:output(cd.solution)
  cg:run()
  local any = false
  for _, s in ipairs(rows_of(cg:read(cd.solution))) do any = any or #s > 0 end
  if not any then die("data = %s: the first %d records have no 'solution' to teacher-force", cfg.data, cfg.batch) end
end

local m
if cfg.model == "random" then
  m = random_model()
else
  m = rlfr.load(cfg.model)
  if not m.tokenizer then die("%s: the bundle has no tokenizer.json (needed to teacher-force solutions)", cfg.model) end
end

local pc = m.policy:config()
-- Tapped block j = round(p*N) (half to even); j = 0 would give tau = 0, which
-- the flow cannot take: say so here rather than deep inside latent_tap.
for _, p in ipairs(cfg.layers) do
  local x = p * pc.num_hidden_layers
  local j = math.floor(x + 0.5)
  if j - x == 0.5 and j % 2 == 1 then j = j - 1 end
  if j < 1 then
    die("layers: fraction %g of a %d-layer policy taps block 0 (tau = 0); use fractions >= %g", p,
        pc.num_hidden_layers, 1 / pc.num_hidden_layers)
  end
end
local flow
if cfg.init == "bundle" then
  flow = m.flow or die("%s: init=bundle but the bundle has no flow.safetensors", cfg.model)
elseif cfg.init == "new" then
  flow = rlfr.new_flow { policy = m.policy, width = cfg.width > 0 and cfg.width or pc.hidden_size, depth = cfg.depth,
                         seed = seed + 1 }
else
  die("init = '%s': expected \"new\" or \"bundle\"", cfg.init)
end
local contexts = {}
for c in cfg.context:gmatch("[^,%s]+") do contexts[#contexts + 1] = c end

-- ---------------------------------------------------------------- graph

local g = rlfr.graph "flow_offline"
local d = g:dataset(dataset_opts { name = "data", batch = cfg.batch, seed = seed })
local tp = g:tokenize_pair { name = "pair", tokenizer = m.tokenizer, max_len = cfg.max_len, truncate = true }
  (d.prompt, d.solution)
-- No optimizer owns the policy: it stays frozen (checked below).
local pol = g:policy { name = "policy", net = m.policy, tap_layers = cfg.layers } (tp.tokens, tp.lengths)
local lt = g:latent_tap { name = "tap", context = contexts, shift = { cfg.shift } }
  { hidden = pol.hidden, tau = pol.tau, mask = tp.mask, lengths = tp.lengths }
local fl = g:flow { name = "flow", net = flow, mode = "train", batch_mul = cfg.batch_mul, seed = seed }
  { target = lt.target, cond = lt.cond, tau = lt.tau, index = lt.index }
g:optimizer { name = "adamw", params = flow, lr = cfg.lr, schedule = "cosine", warmup = cfg.warmup,
              decay_steps = math.max(1, cfg.steps - cfg.warmup), min_lr = cfg.min_lr,
              weight_decay = cfg.weight_decay } (fl.loss)

local policy_digest = m.policy:digest()
local run = rlfr.train(g, { steps = cfg.steps, out = run_dir, metrics = { "flow.flow_train_loss", "adamw.lr" } })
if rlfr.args.mode == "plan" then return end
if m.policy:digest() ~= policy_digest then die("the policy changed during flow training (it must stay frozen)") end

-- ---------------------------------------------------------------- loss curve

local curve = {}
for line in io.lines(run.metrics_file) do
  local step = tonumber(line:match('"step":(%d+)'))
  local loss = tonumber(line:match('"flow%.flow_train_loss":([-%d%.eE+]+)'))
  if step and loss then curve[#curve + 1] = { step, loss } end
end
if #curve == 0 then die("%s: no flow loss recorded", run.metrics_file) end
local function mean(a, b)
  local s = 0
  for i = a, b do s = s + curve[i][2] end
  return s / (b - a + 1)
end
local k = math.max(1, #curve // 10)
local first, last = mean(1, k), mean(#curve - k + 1, #curve)
print(fmt("flow loss curve (%d steps, %s):", #curve, run.metrics_file))
local points = math.max(2, cfg.curve_points)
local shown = {}
for i = 0, points - 1 do
  local j = 1 + math.floor(i * (#curve - 1) / (points - 1) + 0.5)
  if not shown[j] then
    shown[j] = true
    print(fmt("  step %6d  loss %.6f", curve[j][1], curve[j][2]))
  end
end
print(fmt("flow loss: first %d steps %.6f, last %d steps %.6f (ratio %.3f)", k, first, k, last, last / first))

-- ---------------------------------------------------------------- save

local out = cfg.bundle_out
if out == "" then
  if cfg.model == "random" then out = run_dir .. "/bundle"
  else out = cfg.model:gsub("%.tar%.zst$", "") end
end
local meta = {}
for key, v in pairs(m.meta or {}) do meta[key] = v end
meta.flow = {
  recipe = {
    graph = "graphs/flow_offline.lua", data = cfg.data, steps = cfg.steps, batch = cfg.batch, lr = cfg.lr,
    warmup = cfg.warmup, schedule = "cosine", min_lr = cfg.min_lr, weight_decay = cfg.weight_decay,
    layers = cfg.layers, context = contexts, shift = cfg.shift, batch_mul = cfg.batch_mul,
    width = flow:config().width, depth = flow:config().depth, max_len = cfg.max_len, init = cfg.init, seed = seed,
    task = cfg.data == "arith" and cfg.task or nil,
  },
  loss_first = first, loss_last = last, seconds = run.seconds,
}
rlfr.save_bundle { dir = out, policy = m.policy, tokenizer = m.tokenizer, flow = flow, meta = meta, dtype = cfg.dtype }
print(fmt("saved %s (flow: width %d, depth %d, %d parameters)", out, flow:config().width, flow:config().depth,
          flow:num_params()))
