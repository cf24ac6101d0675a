-- Offline flow training for a multimodal model (RLFR, DESIGN.md section 2):
-- graphs/flow_offline.lua with images. Expert solutions of the shapes task are
-- teacher-forced through the FROZEN policy with the image spliced in by the
-- FROZEN vision encoder; the tapped layers' hidden states on the response
-- tokens become (target, context, tau) triples and the flow learns their
-- velocity field (AdamW, warmup + cosine). The flow is saved into the bundle
-- next to the unchanged policy, vision encoder and tokenizer, with the recipe
-- in rlfr.json (meta.flow), as flow_offline.lua does.
--
--   rlfr run graphs/flow_vision.lua                                   # models/shapes-tiny, in place
--   rlfr run graphs/flow_vision.lua --set model=path/to/bundle --set bundle_out=out/dir
--   rlfr run graphs/flow_vision.lua --set model=random --set steps=5   # micro model, no bundle needed
local rlfr = require "rlfr"
local dir = rlfr.args.script:match("^(.*)[/\\]") or "."
local V = dofile(dir .. "/lib/rl_vision.lua")
local T = dofile(dir .. "/lib/rl_text.lua")
local F = dofile(dir .. "/lib/flow_train.lua")
local core = require "rlfr.core"
local die = T.die
F.die = die

local vdef = V.defaults("rlfr")
local micro = vdef.micro
micro.sft_steps = 0 -- a random policy's latents are enough to exercise the graph
local cfg = rlfr.config {
  model = "models/shapes-tiny", -- bundle with a vision encoder, or .tar.zst; "random": micro model
  steps = 400,
  batch = 16,                   -- expert solutions (with their images) per step
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
  max_len = 384,                -- tokens per sequence: image tokens + question + solution (< 200 for
                                -- 1-4 shapes; longer solutions are cut, never the prompt)
  init = "new",                 -- "new": a fresh flow; "bundle": continue from the bundle's flow
  bundle_out = "",              -- where to save ("": the model's own directory; model=random: RUN/bundle)
  dtype = "f32",                -- policy weights in the saved bundle: f32 or bf16
  curve_points = 6,             -- loss-curve lines printed at the end
  task = vdef.task,             -- the shapes task the model was trained on (graphs/sft_vision.lua)
  micro = micro,                -- model = "random" (graphs/lib/rl_vision.lua)
}

local seed = rlfr.args.seed
local run_dir = rlfr.args.out or "runs/flow_vision"
local ok, merr = core.mkdir_p(run_dir)
if not ok then die("%s", merr) end

local m
if cfg.model == "random" then
  m = V.random_model(cfg, run_dir, seed)
  m.meta = { recipe = { policy = "random (flow_vision micro)", seed = seed }, data = m.meta.data }
else
  m = V.load_model(cfg, run_dir, seed)
end
local pad = m.tokenizer:token_id("<|image_pad|>")
local vc = m.vision:config()
local pc = m.policy:config()
F.check_layers(cfg.layers, pc.num_hidden_layers)
local flow = F.flow(cfg, m, seed)
local contexts = F.contexts(cfg.context)

-- ---------------------------------------------------------------- graph

local g = rlfr.graph "flow_vision"
local d = g:image_dataset(V.data_opts(cfg, vc, { name = "data", split = "train", batch = cfg.batch, seed = seed }))
local tp = g:tokenize_pair { name = "pair", tokenizer = m.tokenizer, system = "", max_len = cfg.max_len,
                             truncate = true } (d.prompt, d.solution)
-- No optimizer owns the policy or the encoder: both stay frozen (checked below).
local enc = g:vision_encoder { name = "vision", net = m.vision } { pixels = d.pixels, grid = d.grid }
local pol = g:policy { name = "policy", net = m.policy, tap_layers = cfg.layers, image_pad_id = pad }
                     { tokens = tp.tokens, lengths = tp.lengths, image_embeds = enc.embeds }
F.add_training(g, cfg, flow, pol, tp, contexts, seed)

local digests = { m.policy:digest(), m.vision:digest() }
local run = rlfr.train(g, { steps = cfg.steps, out = run_dir, metrics = F.metrics })
if rlfr.args.mode == "plan" then return end
if m.policy:digest() ~= digests[1] or m.vision:digest() ~= digests[2] then
  die("the policy or the vision encoder changed during flow training (both must stay frozen)")
end

F.finish(cfg, m, flow, run, run_dir, contexts, seed,
         { graph = "graphs/flow_vision.lua", data = "shapes", task = cfg.task, vision = m.vision })
