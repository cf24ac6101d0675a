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
local core = require "rlfr.core"
local fmt = string.format
local die = T.die

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
-- Tapped block j = round(p*N) (half to even); j = 0 would give tau = 0.
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

local g = rlfr.graph "flow_vision"
local d = g:image_dataset(V.data_opts(cfg, vc, { name = "data", split = "train", batch = cfg.batch, seed = seed }))
local tp = g:tokenize_pair { name = "pair", tokenizer = m.tokenizer, system = "", max_len = cfg.max_len,
                             truncate = true } (d.prompt, d.solution)
-- No optimizer owns the policy or the encoder: both stay frozen (checked below).
local enc = g:vision_encoder { name = "vision", net = m.vision } { pixels = d.pixels, grid = d.grid }
local pol = g:policy { name = "policy", net = m.policy, tap_layers = cfg.layers, image_pad_id = pad }
                     { tokens = tp.tokens, lengths = tp.lengths, image_embeds = enc.embeds }
local lt = g:latent_tap { name = "tap", context = contexts, shift = { cfg.shift } }
  { hidden = pol.hidden, tau = pol.tau, mask = tp.mask, lengths = tp.lengths }
local fl = g:flow { name = "flow", net = flow, mode = "train", batch_mul = cfg.batch_mul, seed = seed }
  { target = lt.target, cond = lt.cond, tau = lt.tau, index = lt.index }
g:optimizer { name = "adamw", params = flow, lr = cfg.lr, schedule = "cosine", warmup = cfg.warmup,
              decay_steps = math.max(1, cfg.steps - cfg.warmup), min_lr = cfg.min_lr,
              weight_decay = cfg.weight_decay } (fl.loss)

local digests = { m.policy:digest(), m.vision:digest() }
local run = rlfr.train(g, { steps = cfg.steps, out = run_dir, metrics = { "flow.flow_train_loss", "adamw.lr" } })
if rlfr.args.mode == "plan" then return end
if m.policy:digest() ~= digests[1] or m.vision:digest() ~= digests[2] then
  die("the policy or the vision encoder changed during flow training (both must stay frozen)")
end

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
local shown = {}
for i = 0, math.max(2, cfg.curve_points) - 1 do
  local j = 1 + math.floor(i * (#curve - 1) / (math.max(2, cfg.curve_points) - 1) + 0.5)
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
    graph = "graphs/flow_vision.lua", data = "shapes", steps = cfg.steps, batch = cfg.batch, lr = cfg.lr,
    warmup = cfg.warmup, schedule = "cosine", min_lr = cfg.min_lr, weight_decay = cfg.weight_decay,
    layers = cfg.layers, context = contexts, shift = cfg.shift, batch_mul = cfg.batch_mul,
    width = flow:config().width, depth = flow:config().depth, max_len = cfg.max_len, init = cfg.init, seed = seed,
    task = cfg.task,
  },
  loss_first = first, loss_last = last, seconds = run.seconds,
}
rlfr.save_bundle { dir = out, policy = m.policy, tokenizer = m.tokenizer, vision = m.vision, flow = flow, meta = meta,
                   dtype = cfg.dtype }
print(fmt("saved %s (flow: width %d, depth %d, %d parameters)", out, flow:config().width, flow:config().depth,
          flow:num_params()))
