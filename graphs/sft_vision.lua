-- Supervised fine-tuning of a multimodal policy (Qwen2 decoder + ViT vision
-- encoder) on the shapes task's expert solutions: the recipe of the shipped
-- model models/shapes-tiny (docs/models.md).
--   1. model = "new": a byte-level BPE tokenizer trained on the task's
--      questions and expert solutions with the special tokens of ChatML and
--      Qwen2-VL's image placeholders; a tiny Qwen2 policy; a tiny ViT whose
--      patch / merge are the dataset's and whose output size is the policy's
--      hidden size. Otherwise model = a bundle with a vision encoder.
--   2. Teacher forcing with the image splice: image_dataset -> tokenize_pair
--      (ChatML, no system turn: the question says how to answer) and
--      vision_encoder -> policy (image_embeds replace <|image_pad|>) ->
--      ce_loss -> AdamW on the policy and (unless freeze_vision) the encoder,
--      each with warmup + cosine; checkpointed, resumes exactly.
--   3. Greedy accuracy on test problems every eval.every steps, through
--      graphs that share the model objects (graphs/lib/eval_vision.lua).
--   4. Final evaluation (greedy, and sampled at temperature 1) and the bundle
--      (policy, tokenizer, vision encoder; f32) with the recipe and accuracies
--      in rlfr.json.
--   nice -n 5 rlfr run graphs/sft_vision.lua --seed 0 --threads 1 --out runs/sft-vision   # models/shapes-tiny
--   rlfr run graphs/sft_vision.lua --set micro=true      # a seconds-long smoke run (tests)
local rlfr = require "rlfr"
local dir = rlfr.args.script:match("^(.*)[/\\]") or "."
local ev = dofile(dir .. "/lib/eval_vision.lua")
local S = dofile(dir .. "/lib/sft.lua")
local fmt = string.format

local cfg = rlfr.config {
  out = "runs/sft-vision",
  save = "",                 -- bundle directory (default OUT/model)
  model = "new",             -- "new" (built here) or a bundle with a vision encoder to fine-tune
  steps = 2400,              -- the encoder starts to matter after ~1200-1600 steps (docs/models.md)
  batch = 16,
  lr = 2e-3,                 -- policy (tuned for these sizes, as sft_text.lua)
  vision_lr = 1e-3,          -- vision encoder
  min_lr = 1e-4,
  warmup = 50,
  weight_decay = 0.0,
  clip = 1.0,
  freeze_vision = false,     -- true: only the policy learns; the encoder stays as loaded / initialised
  checkpoint_every = 100,
  keep = 5,
  -- The shapes task (docs/tasks.md); the same settings go to the evaluations.
  task = { width = 112, height = 112, min_shapes = 1, max_shapes = 4, kinds = 3, test_percent = 10, task_seed = 0 },
  patch = 14, merge = 2,     -- 112x112 -> 8x8 patches -> 16 image tokens
  tokenizer = { vocab = 512, texts = 4000 },
  model_size = { hidden = 128, layers = 4, heads = 4, kv_heads = 4, intermediate = 384 },
  vision = { width = 64, depth = 2, heads = 4, mlp = 256 },
  eval = { every = 400, n = 128, max_new = 128 },
  final = { n = 256, samples = 8, temperature = 1.0 },
  micro = false,             -- tiny everything: a CI smoke test of the recipe
}
if cfg.micro then
  cfg.steps, cfg.batch, cfg.warmup, cfg.checkpoint_every = 6, 4, 2, 3
  cfg.tokenizer = { vocab = 300, texts = 100 }
  cfg.model_size = { hidden = 32, layers = 2, heads = 2, kv_heads = 1, intermediate = 64 }
  cfg.vision = { width = 16, depth = 1, heads = 2, mlp = 32 }
  cfg.task.width, cfg.task.height = 56, 56
  cfg.eval = { every = 3, n = 4, max_new = 12 }
  cfg.final = { n = 4, samples = 2, temperature = 1.0 }
end
local seed = rlfr.args.seed
local out = rlfr.args.out or cfg.out
local save = cfg.save ~= "" and cfg.save or (out .. "/model")
local SPECIAL = { "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>" }

local function data_opts(extra)
  local o = { task = "shapes", patch = cfg.patch, merge = cfg.merge }
  for k, v in pairs(cfg.task) do o[k] = v end
  for k, v in pairs(extra) do o[k] = v end
  return o
end

local rows_of = S.rows_of

-- 1. The model: built from (task, seed), so a resumed run rebuilds the same
-- one before the checkpoint restores the weights; or loaded.
os.execute("mkdir -p '" .. out:gsub("'", "'\\''") .. "'")
local tok, policy, vit
if cfg.model == "new" then
  local tg = rlfr.graph "sft-vision-texts"
  local td = tg:image_dataset(data_opts { name = "data", split = "train", batch = cfg.tokenizer.texts, seed = seed + 1 })
  tg:output(td.prompt)
  tg:output(td.solution)
  tg:run()
  -- The questions without their placeholders (special tokens never enter BPE).
  local texts = {}
  for _, p in ipairs(rows_of(tg:read(td.prompt))) do texts[#texts + 1] = p:gsub("<|[%w_]+|>", "") end
  for _, s in ipairs(rows_of(tg:read(td.solution))) do texts[#texts + 1] = s end
  tok = rlfr.train_tokenizer { texts = texts, vocab_size = cfg.tokenizer.vocab, min_frequency = 2,
                               special = SPECIAL, out = out .. "/tokenizer.json" }
  local mc = cfg.model_size
  policy = rlfr.new_policy {
    vocab_size = tok:vocab_size(), hidden_size = mc.hidden, num_hidden_layers = mc.layers,
    num_attention_heads = mc.heads, num_key_value_heads = mc.kv_heads, intermediate_size = mc.intermediate,
    max_position_embeddings = 1024, tie_word_embeddings = true, seed = seed,
  }
  local vc = cfg.vision
  vit = rlfr.new_vit { patch = cfg.patch, merge = cfg.merge, width = vc.width, depth = vc.depth, heads = vc.heads,
                       mlp = vc.mlp, out_hidden = mc.hidden, seed = seed + 3 }
else
  local m = rlfr.load(cfg.model)
  tok, policy, vit = m.tokenizer, m.policy, m.vision
  if not tok or not vit then error(fmt("sft_vision: %s needs a tokenizer and a vision encoder", cfg.model), 0) end
  local vc = vit:config()
  if vc.patch ~= cfg.patch or vc.merge ~= cfg.merge then
    error(fmt("sft_vision: %s's vision encoder has patch %d / merge %d, the data patch %d / merge %d",
              cfg.model, vc.patch, vc.merge, cfg.patch, cfg.merge), 0)
  end
end
for _, s in ipairs(SPECIAL) do
  if not tok:token_id(s) then error(fmt("sft_vision: the tokenizer lacks the special token %s", s), 0) end
end

-- 2. The SFT graph: image questions + expert solutions, teacher-forced.
local g = rlfr.graph "sft-vision"
local d = g:image_dataset(data_opts { name = "data", split = "train", batch = cfg.batch, seed = seed + 2 })
local tp = g:tokenize_pair { name = "pair", tokenizer = tok, system = "" } (d.prompt, d.solution)
local enc = g:vision_encoder { name = "vision", net = vit } { pixels = d.pixels, grid = d.grid }
local fw = g:policy { name = "policy", net = policy, image_pad_id = tok:token_id("<|image_pad|>") }
                    { tokens = tp.tokens, lengths = tp.lengths, image_embeds = enc.embeds }
local ce = g:ce_loss { name = "ce" } (fw.logprobs, tp.mask)
local function adamw(name, params, lr)
  g:optimizer { name = name, params = params, lr = lr, betas = { 0.9, 0.95 }, weight_decay = cfg.weight_decay,
                schedule = "cosine", warmup = cfg.warmup, decay_steps = math.max(cfg.steps - cfg.warmup, 1),
                min_lr = cfg.min_lr * lr / cfg.lr, clip = cfg.clip } (ce)
end
adamw("adamw", policy, cfg.lr)
if not cfg.freeze_vision then adamw("adamw_vision", vit, cfg.vision_lr) end

-- 3. Greedy accuracy on the first eval.n test problems during training.
local model = { policy = policy, tokenizer = tok, vision = vit }
local function evaluator(n)
  return ev.new(model, { data = "shapes", split = "test", task = cfg.task, n = n, seed = seed,
                         max_new = cfg.eval.max_new })
end
local during = evaluator(cfg.eval.n)
local run = rlfr.train(g, {
  steps = cfg.steps, out = out, log_every = 25, checkpoint_every = cfg.checkpoint_every, keep = cfg.keep,
  metrics = { "ce.loss", "adamw.lr", "eval.greedy" },
  eval_every = cfg.eval.every,
  eval = function()
    local r = during:run { greedy = true }
    return { ["eval.greedy"] = r.accuracy, ["eval.format"] = r.format, ["eval.response_tokens"] = r.response_tokens }
  end,
})

-- 4. Final evaluation and the bundle.
local final = evaluator(cfg.final.n)
local greedy = final:run { greedy = true }
local sampled = final:run { samples = cfg.final.samples, temperature = cfg.final.temperature }
local pass = ev.mean_pass_at_k(sampled, cfg.final.samples)
print(fmt("accuracy_greedy=%.4f", greedy.accuracy))
print(fmt("accuracy_sampled=%.4f", sampled.accuracy))
print(fmt("pass@%d=%.4f", cfg.final.samples, pass))
print(fmt("loss first=%.4f last=%.4f", run.first["ce.loss"], run.last["ce.loss"]))

local command = S.command("graphs/sft_vision.lua")
local task = { task = "shapes", split = "train", patch = cfg.patch, merge = cfg.merge }
for k, v in pairs(cfg.task) do task[k] = v end
rlfr.save_bundle {
  dir = save, policy = policy, tokenizer = tok, vision = vit, dtype = "f32",
  meta = {
    recipe = {
      script = "graphs/sft_vision.lua", command = command, seed = seed, model = cfg.model, steps = cfg.steps,
      batch = cfg.batch, lr = cfg.lr, vision_lr = cfg.vision_lr, freeze_vision = cfg.freeze_vision,
      min_lr = cfg.min_lr, warmup = cfg.warmup, schedule = "cosine", betas = { 0.9, 0.95 },
      weight_decay = cfg.weight_decay, clip = cfg.clip, loss = "ce_loss (token mean over the response)",
      template = "chat (ChatML, no system turn)", data = task,
      tokenizer = { kind = "byte-level BPE (rlfr.train_tokenizer)", vocab_size = tok:vocab_size(),
                    texts = cfg.tokenizer.texts, special = SPECIAL },
    },
    step = cfg.steps,
    metrics = {
      loss_first = run.first["ce.loss"], loss_last = run.last["ce.loss"],
      test_problems = cfg.final.n, max_new = cfg.eval.max_new,
      accuracy_greedy = greedy.accuracy, format_greedy = greedy.format,
      accuracy_sampled = sampled.accuracy, ["pass_at_" .. cfg.final.samples] = pass,
      sampled_temperature = cfg.final.temperature, sampled_per_problem = cfg.final.samples,
    },
  },
}
print("saved " .. save)
