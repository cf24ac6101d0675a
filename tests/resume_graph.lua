-- A small graph for tests/test_resume.sh: an MLP regression with AdamW (a
-- parameter set and optimizer moments), a seeded data source (RNG keyed by
-- step) and an arithmetic dataset node (a data cursor crossing epochs), so a
-- checkpoint must restore all three kinds of state for resume to be bit-exact.
local rlfr = require "rlfr"
local cfg = rlfr.config { steps = 40, every = 10, keep = 2, out = "runs/resume" }

local p = rlfr.params { name = "mlp", seed = rlfr.args.seed + 1 }
local g = rlfr.graph "resume"
local d = g:regression_data { name = "data", batch = 16, inputs = 4, outputs = 2, seed = rlfr.args.seed }
local h = g:linear { name = "fc1", params = p, prefix = "fc1", inputs = 4, outputs = 16 } (d.x)
local y = g:linear { name = "fc2", params = p, prefix = "fc2", inputs = 16, outputs = 2 } (g:silu { name = "act" } (h))
local loss = g:mse_loss { name = "mse" } (y, d.y)
g:optimizer { name = "adamw", params = p, lr = 1e-2, schedule = "cosine", warmup = 5, decay_steps = cfg.steps,
              clip = 1.0 } (loss)
g:dataset { name = "problems", task = "arith", batch = 3, size = 20, seed = 7 }

local run = rlfr.train(g, { steps = cfg.steps, out = cfg.out, checkpoint_every = cfg.every, keep = cfg.keep,
                            log_every = 1000 })
print(string.format("first=%.9g last=%.9g", run.first["mse.loss"], run.last["mse.loss"]))
