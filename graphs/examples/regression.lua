-- The first graph: fit a small MLP (linear -> SiLU -> linear) to a fixed
-- random teacher MLP on seeded synthetic data, with MSE and AdamW
-- (linear warmup, then cosine decay). Runs in seconds; the loss must fall by
-- at least 100x, which the script checks itself.
--   rlfr run graphs/examples/regression.lua [--set steps=400] [--seed 1]
--   rlfr plan graphs/examples/regression.lua
local rlfr = require "rlfr"

local cfg = rlfr.config {
  steps = 300,
  batch = 64,
  inputs = 8,
  hidden = 64,
  outputs = 4,
  lr = 1e-2,            -- tuned for this size: 3e-3 needs ~2x the steps
  warmup = 20,
  min_lr = 1e-4,
  weight_decay = 0.0,
  min_ratio = 100.0,    -- required first-loss / last-loss
}

local p = rlfr.params { name = "mlp", seed = rlfr.args.seed + 1 }
local g = rlfr.graph "regression"

local d = g:regression_data { name = "data", batch = cfg.batch, inputs = cfg.inputs, outputs = cfg.outputs,
                                                 seed = rlfr.args.seed }
local h = g:linear { name = "fc1", params = p, prefix = "fc1", inputs = cfg.inputs, outputs = cfg.hidden } (d.x)
local a = g:silu { name = "act" } (h)
local y = g:linear { name = "fc2", params = p, prefix = "fc2", inputs = cfg.hidden, outputs = cfg.outputs } (a)
local loss = g:mse_loss { name = "mse" } (y, d.y)
g:optimizer { name = "adamw", params = p, lr = cfg.lr, betas = { 0.9, 0.999 }, weight_decay = cfg.weight_decay,
              schedule = "cosine", warmup = cfg.warmup, decay_steps = cfg.steps - cfg.warmup,
              min_lr = cfg.min_lr } (loss)

local run = rlfr.train(g, { steps = cfg.steps, out = "runs/regression", log_every = 50, metrics = { "mse.loss" } })

local first, last = run.first["mse.loss"], run.last["mse.loss"]
print(string.format("loss first=%.6g last=%.6g ratio=%.1f (%d steps, %.2fs)", first, last, first / last,
                    run.steps, run.seconds))
if not (first / last >= cfg.min_ratio) then
  error(string.format("loss fell only %.1fx (first %.6g, last %.6g); expected at least %gx",
                      first / last, first, last, cfg.min_ratio))
end
