-- expect: metric 'loss.loss' is NaN at step 1
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local d = g:regression_data { batch = 4, inputs = 3, outputs = 2 }
local bad = g:scale { factor = 0 / 0 } (d.y)   -- NaN on purpose
g:mse_loss { name = "loss" } (bad, d.y)
rlfr.train(g, { steps = 3 })
