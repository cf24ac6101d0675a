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
local F = dofile((rlfr.args.script:match("^(.*)[/\\]") or ".") .. "/lib/flow_train.lua")

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
F.die = die

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
local rows_of = dofile((rlfr.args.script:match("^(.*)[/\\]") or ".") .. "/lib/sft.lua").rows_of

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

F.check_layers(cfg.layers, m.policy:config().num_hidden_layers)
local flow = F.flow(cfg, m, seed)
local contexts = F.contexts(cfg.context)

-- ---------------------------------------------------------------- graph

local g = rlfr.graph "flow_offline"
local d = g:dataset(dataset_opts { name = "data", batch = cfg.batch, seed = seed })
local tp = g:tokenize_pair { name = "pair", tokenizer = m.tokenizer, max_len = cfg.max_len, truncate = true }
  (d.prompt, d.solution)
-- No optimizer owns the policy: it stays frozen (checked below).
local pol = g:policy { name = "policy", net = m.policy, tap_layers = cfg.layers } (tp.tokens, tp.lengths)
F.add_training(g, cfg, flow, pol, tp, contexts, seed)

local policy_digest = m.policy:digest()
local run = rlfr.train(g, { steps = cfg.steps, out = run_dir, metrics = F.metrics })
if rlfr.args.mode == "plan" then return end
if m.policy:digest() ~= policy_digest then die("the policy changed during flow training (it must stay frozen)") end

F.finish(cfg, m, flow, run, run_dir, contexts, seed,
         { graph = "graphs/flow_offline.lua", data = cfg.data, task = cfg.data == "arith" and cfg.task or nil })
