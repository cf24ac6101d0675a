-- The RL graphs for the multimodal shapes task, shared by
-- graphs/rlfr_vision.lua, graphs/rlvr_vision.lua and graphs/entropy_vision.lua:
-- the pipeline of graphs/lib/rl_text.lua (its make_train, driver, options and
-- metrics), with images. What differs:
--   prompts   image_dataset (task "shapes") -> tokenize (ChatML, no system
--             turn, as graphs/sft_vision.lua trains) and vision_encoder
--   sampler   image_embeds spliced into the prompt prefill (one image per prompt)
--   policies  the frozen `old` forward (taps) and the actor take the same
--             embeddings repeated for the G rollouts of each image (repeat_each)
--   verifier  kind "vision": reward.accuracy if the <answer> is right, plus
--             reward.format if the response is <think>..</think><answer>..</answer>
--             (DESIGN.md section 2), on the response alone (the sampler's `start`)
--   encoder   frozen by default; train_vision = true gives it its own AdamW
--             (lr vision_lr) on the policy-gradient loss
-- docs/rl_graphs.md ("The vision graphs") lists the options.
--
-- Usage (from a graph script):  dofile("graphs/lib/rl_vision.lua").main("rlfr")
local rlfr = require "rlfr"
local dir = rlfr.args.script:match("^(.*)[/\\]") or "."
local T = dofile(dir .. "/lib/rl_text.lua")
local EV = dofile(dir .. "/lib/eval_vision.lua")

local M = {}
local fmt = string.format
local die = T.die

-- ChatML's tokens and Qwen2-VL's image placeholders (graphs/sft_vision.lua).
M.SPECIAL = { "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>" }

-- The text graphs' defaults (reference values, learning rates), changed
-- where the task differs.
local function defaults(method)
  local d = T.defaults(method)
  d.model = "models/shapes-tiny" -- bundle with a vision encoder; "random": micro model (tests)
  d.max_new = 128                -- the shapes solutions list every shape: 1-4 shapes need < 100 tokens
  d.prompt_len = 256             -- 16 image tokens + the question (< 80 tokens)
  d.partial = nil                -- boxed-only option; the vision rule has its own weights:
  d.reward = { accuracy = 1.0, format = 0.5 } -- multimodal reference: + 0.5 for the think/answer format
  d.train_vision = false         -- true: the encoder learns too (own AdamW on the same loss)
  d.vision_lr = 3e-5             -- its learning rate (train_vision only)
  -- The shapes task as graphs/sft_vision.lua trains models/shapes-tiny; must
  -- match the model's (patch and merge come from its vision encoder).
  d.task = { width = 112, height = 112, min_shapes = 1, max_shapes = 4, kinds = 3, test_percent = 10, task_seed = 0 }
  d.eval = { every = 10, n = 256, max_new = 128 }
  -- model = "random": the text micro model plus a micro ViT, on smaller
  -- images (micro.image pixels a side: 2x2 image tokens), so tests take seconds.
  d.micro.vision = { width = 16, depth = 1, heads = 2, mlp = 32 }
  d.micro.image = 56
  d.micro.sft_lr = 1e-2
  return d
end

local function data_opts(cfg, vc, extra)
  local o = { task = "shapes", patch = vc.patch, merge = vc.merge }
  for k, v in pairs(cfg.task) do o[k] = v end
  for k, v in pairs(extra) do o[k] = v end
  return o
end

-- What a bundle records about its task (meta.data), so that the next graph
-- run from it uses the same images and questions by default.
local function task_record(cfg, vc)
  local o = { task = "shapes", patch = vc.patch, merge = vc.merge }
  for k, v in pairs(cfg.task) do o[k] = v end
  return o
end

-- The task the bundle was trained on is the default (graphs/sft_vision.lua
-- records it as meta.recipe.data, the RL and flow graphs as meta.data); an
-- explicit --set task.KEY wins.
local function adopt_task(cfg, m)
  local meta = m.meta or {}
  local rd = meta.data
  if type(rd) ~= "table" and type(meta.recipe) == "table" then rd = meta.recipe.data end
  if type(rd) ~= "table" or rd.task ~= "shapes" then return end
  local given = {}
  for _, a in ipairs(rlfr.args.set or {}) do
    local k = a:match("^task%.([%w_]+)=")
    if k then given[k] = true end
  end
  for _, k in ipairs(EV.task_keys) do
    if rd[k] ~= nil and not given[k] then cfg.task[k] = rd[k] end
  end
end

-- ---------------------------------------------------------------- models

-- A micro policy + ViT + tokenizer + flow: a BPE tokenizer trained on the
-- task's questions and solutions with the special tokens, a random policy and
-- encoder (patch / merge those of the data), a random flow, then SFT steps of
-- the policy so that some rollouts are right and rewards vary. The encoder
-- stays random (its features still tell images apart): an optimizer on it
-- would mark it trainable for the whole process, and the frozen-encoder RL
-- graph would then ask for its gradient across phases.
local function random_model(cfg, out, seed)
  T.need("new_vit", "model=random")
  local mc = cfg.micro
  if mc.image > 0 then cfg.task.width, cfg.task.height = mc.image, mc.image end
  local vc = { patch = 14, merge = 2 }
  local tg = rlfr.graph "rl-vision-texts"
  local td = tg:image_dataset(data_opts(cfg, vc, { split = "train", batch = mc.texts, seed = seed }))
  tg:output(td.prompt)
  tg:output(td.solution)
  tg:run()
  local texts = {}
  -- The questions without their placeholders (special tokens never enter BPE).
  for _, q in ipairs(T.rows_of(tg:read(td.prompt))) do texts[#texts + 1] = q:gsub("<|[%w_]+|>", "") end
  for _, s in ipairs(T.rows_of(tg:read(td.solution))) do texts[#texts + 1] = s end
  local tok = rlfr.train_tokenizer { texts = texts, vocab_size = mc.vocab, min_frequency = 2, special = M.SPECIAL,
                                     out = out .. "/tokenizer.json" }
  local policy = rlfr.new_policy {
    vocab_size = tok:vocab_size(), hidden_size = mc.hidden, num_hidden_layers = mc.layers,
    num_attention_heads = mc.heads, num_key_value_heads = mc.kv_heads, intermediate_size = mc.intermediate,
    max_position_embeddings = 1024, tie_word_embeddings = true, seed = seed,
  }
  local v = mc.vision
  local vit = rlfr.new_vit { patch = vc.patch, merge = vc.merge, width = v.width, depth = v.depth, heads = v.heads,
                             mlp = v.mlp, out_hidden = mc.hidden, seed = seed + 3 }
  local flow = rlfr.new_flow { hidden = mc.hidden, width = mc.flow_width, depth = mc.flow_depth, seed = seed + 1 }
  if mc.sft_steps > 0 and rlfr.args.mode ~= "plan" then
    local sg = rlfr.graph "rl-vision-micro-sft"
    local sd = sg:image_dataset(data_opts(cfg, vc, { name = "data", split = "train", batch = mc.sft_batch,
                                                     seed = seed + 2 }))
    local tp = sg:tokenize_pair { name = "pair", tokenizer = tok, system = "" } (sd.prompt, sd.solution)
    local enc = sg:vision_encoder { name = "vision", net = vit } { pixels = sd.pixels, grid = sd.grid }
    local fw = sg:policy { name = "policy", net = policy, image_pad_id = tok:token_id("<|image_pad|>") }
                         { tokens = tp.tokens, lengths = tp.lengths, image_embeds = enc.embeds }
    local ce = sg:ce_loss { name = "ce" } (fw.logprobs, tp.mask)
    sg:optimizer { name = "opt", params = policy, lr = mc.sft_lr, betas = { 0.9, 0.95 }, clip = 1.0 } (ce)
    T.run_micro_sft(sg, mc.sft_steps)
  end
  return { policy = policy, tokenizer = tok, flow = flow, vision = vit, dir = "random",
           meta = { data = task_record(cfg, vc) } }
end

-- A bundle made for images: a tokenizer with <|image_pad|> and a vision
-- encoder. A text-only model fails here with one line, not deep in a node.
local function load_model(cfg, out, seed)
  if cfg.model == "random" then return random_model(cfg, out, seed) end
  local m = T.load_model(cfg, out, seed)
  local missing = {}
  for _, s in ipairs { "<|vision_start|>", "<|image_pad|>", "<|vision_end|>" } do
    if not m.tokenizer:token_id(s) then missing[#missing + 1] = s end
  end
  if #missing > 0 then
    die("%s: the tokenizer has no %s token: not a multimodal model (graphs/sft_vision.lua trains one)", cfg.model,
        table.concat(missing, " / "))
  end
  if not m.vision then
    die("%s: the bundle has no vision encoder (vision.safetensors): not a multimodal model " ..
        "(graphs/sft_vision.lua trains one)", cfg.model)
  end
  adopt_task(cfg, m)
  return m
end

-- ---------------------------------------------------------------- graphs

-- Greedy pass@1 on the first eval.n test problems (graphs/lib/eval_vision.lua,
-- the evaluation graphs/sft_vision.lua reports); shares the model objects.
local function make_eval(cfg, m, _, seed)
  local e = EV.new(m, { data = "shapes", split = "test", task = cfg.task, n = cfg.eval.n, max_new = cfg.eval.max_new,
                        seed = seed, prompt_len = cfg.prompt_len })
  return function()
    local r = e:run { greedy = true }
    return r.accuracy, r.response_tokens
  end
end

-- The task's side of rl_text's make_train: image prompts, and the image
-- splice on every sampler and policy node.
local function vision_io(cfg, m, seed)
  local pad = m.tokenizer:token_id("<|image_pad|>")
  local placeholders = { m.tokenizer:token_id("<|vision_start|>"), pad, m.tokenizer:token_id("<|vision_end|>") }
  local vc = m.vision:config()
  local G = cfg.group
  local d, enc, grouped, trained
  local io = {}

  function io.prompts(g)
    d = g:image_dataset(data_opts(cfg, vc, { name = "data", split = "train", batch = cfg.batch, seed = seed }))
    -- No truncation: a cut prompt would lose image placeholders.
    local p = g:tokenize { name = "prompt", tokenizer = m.tokenizer, system = "", max_len = cfg.prompt_len } (d.prompt)
    enc = g:vision_encoder { name = "vision", net = m.vision } { pixels = d.pixels, grid = d.grid }
    -- Rollout b*G+g is sample g of prompt b: it carries image b's
    -- placeholders, so the policies need image b's embeddings G times over.
    grouped = g:node("repeat_each", { name = "vision_group", times = G }) { x = enc.embeds, counts = enc.counts }
    return d, p
  end

  -- The trainable encoder runs in the update phase, so that its backward
  -- follows the actor's (gradients do not cross phases).
  local function trained_embeds(g)
    if not trained then
      local e = g:vision_encoder { name = "vision_train", net = m.vision } { pixels = d.pixels, grid = d.grid }
      trained = g:node("repeat_each", { name = "vision_train_group", times = G }) { x = e.embeds, counts = e.counts }
    end
    return trained
  end

  function io.extend(g, kind, opts, inputs)
    if kind == "sampler" then
      opts.image_pad_id, inputs.image_embeds = pad, enc.embeds
      -- A generated <|image_pad|> would be spliced by the policies and break
      -- the count of image rows: the sampler never draws the placeholders.
      opts.suppress = placeholders
    elseif kind == "policy" then
      opts.image_pad_id = pad
      inputs.image_embeds = (cfg.train_vision and opts.name == "actor") and trained_embeds(g) or grouped
    elseif kind == "verifier" then
      opts.kind, opts.accuracy, opts.format_bonus = "vision", cfg.reward.accuracy, cfg.reward.format
    end
  end

  function io.after_update(g, loss)
    if cfg.train_vision then
      g:optimizer { name = "vision_opt", params = m.vision, lr = cfg.vision_lr, betas = { 0.9, 0.95 },
                    clip = cfg.grad_clip, warmup = cfg.warmup } (loss)
    end
  end
  return io
end

M.TASK = {
  name = "vision", defaults = defaults, load_model = load_model, make_eval = make_eval, io = vision_io,
  -- The encoder and the task travel with the policy.
  bundle = function(m, t, cfg)
    t.vision = m.vision
    if type(t.meta) == "table" then t.meta.data = task_record(cfg, m.vision:config()) end
  end,
}
M.defaults, M.random_model, M.load_model, M.data_opts, M.task_record =
  defaults, random_model, load_model, data_opts, task_record

function M.main(method_default) return T.run(M.TASK, method_default) end

return M
