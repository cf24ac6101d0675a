-- What the offline flow graphs (graphs/flow_offline.lua for text,
-- graphs/flow_vision.lua for images) share: the checks of the tapped layers,
-- the flow to train, the tap -> flow -> AdamW part of the graph, and the end
-- of a run (loss curve, bundle with the flow and its recipe). The scripts
-- build the data -> policy part themselves.
--   local F = dofile(dir .. "/lib/flow_train.lua")
--   F.die = die   -- the script's error reporter (names the script line)
local rlfr = require "rlfr"
local fmt = string.format

local F = {}
F.die = function(...) error(fmt(...), 0) end

-- Tapped block j = round(p*N) (half to even); j = 0 would give tau = 0, which
-- the flow cannot take: say so here rather than deep inside latent_tap.
function F.check_layers(layers, n_layers)
  for _, p in ipairs(layers) do
    local x = p * n_layers
    local j = math.floor(x + 0.5)
    if j - x == 0.5 and j % 2 == 1 then j = j - 1 end
    if j < 1 then
      F.die("layers: fraction %g of a %d-layer policy taps block 0 (tau = 0); use fractions >= %g", p, n_layers,
            1 / n_layers)
    end
  end
end

-- cfg.init "new" (a fresh flow of cfg.width / cfg.depth) or "bundle" (m.flow).
function F.flow(cfg, m, seed)
  if cfg.init == "bundle" then
    return m.flow or F.die("%s: init=bundle but the bundle has no flow.safetensors", cfg.model)
  elseif cfg.init == "new" then
    local pc = m.policy:config()
    return rlfr.new_flow { policy = m.policy, width = cfg.width > 0 and cfg.width or pc.hidden_size,
                           depth = cfg.depth, seed = seed + 1 }
  end
  F.die("init = '%s': expected \"new\" or \"bundle\"", cfg.init)
end

-- "token_pre, token_post" -> { "token_pre", "token_post" }
function F.contexts(spec)
  local out = {}
  for c in spec:gmatch("[^,%s]+") do out[#out + 1] = c end
  return out
end

-- The trained part: tap the policy's hidden states on the solution tokens,
-- flow matching on them, AdamW with warmup + cosine on the flow only.
function F.add_training(g, cfg, flow, pol, tp, contexts, seed)
  local lt = g:latent_tap { name = "tap", context = contexts, shift = { cfg.shift } }
    { hidden = pol.hidden, tau = pol.tau, mask = tp.mask, lengths = tp.lengths }
  local fl = g:flow { name = "flow", net = flow, mode = "train", batch_mul = cfg.batch_mul, seed = seed }
    { target = lt.target, cond = lt.cond, tau = lt.tau, index = lt.index }
  g:optimizer { name = "adamw", params = flow, lr = cfg.lr, schedule = "cosine", warmup = cfg.warmup,
                decay_steps = math.max(1, cfg.steps - cfg.warmup), min_lr = cfg.min_lr,
                weight_decay = cfg.weight_decay } (fl.loss)
  return fl
end

F.metrics = { "flow.flow_train_loss", "adamw.lr" }

-- After rlfr.train: prints the loss curve and saves the bundle (the model's
-- own directory unless cfg.bundle_out; model=random: RUN/bundle) with
-- meta.flow = the recipe. `how` = { graph, data, task, vision }.
function F.finish(cfg, m, flow, run, run_dir, contexts, seed, how)
  local curve = {}
  for line in io.lines(run.metrics_file) do
    local step = tonumber(line:match('"step":(%d+)'))
    local loss = tonumber(line:match('"flow%.flow_train_loss":([-%d%.eE+]+)'))
    if step and loss then curve[#curve + 1] = { step, loss } end
  end
  if #curve == 0 then F.die("%s: no flow loss recorded", run.metrics_file) end
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

  local out = cfg.bundle_out
  if out == "" then
    if cfg.model == "random" then out = run_dir .. "/bundle"
    else out = cfg.model:gsub("%.tar%.zst$", "") end
  end
  local meta = {}
  for key, v in pairs(m.meta or {}) do meta[key] = v end
  meta.flow = {
    recipe = {
      graph = how.graph, data = how.data, steps = cfg.steps, batch = cfg.batch, lr = cfg.lr,
      warmup = cfg.warmup, schedule = "cosine", min_lr = cfg.min_lr, weight_decay = cfg.weight_decay,
      layers = cfg.layers, context = contexts, shift = cfg.shift, batch_mul = cfg.batch_mul,
      width = flow:config().width, depth = flow:config().depth, max_len = cfg.max_len, init = cfg.init, seed = seed,
      task = how.task,
    },
    loss_first = first, loss_last = last, seconds = run.seconds,
  }
  rlfr.save_bundle { dir = out, policy = m.policy, tokenizer = m.tokenizer, vision = how.vision, flow = flow,
                     meta = meta, dtype = cfg.dtype }
  print(fmt("saved %s (flow: width %d, depth %d, %d parameters)", out, flow:config().width, flow:config().depth,
            flow:num_params()))
end

return F
