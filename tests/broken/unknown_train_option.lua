-- expect: unknown option 'step' (did you mean 'steps'?)
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local d = g:regression_data { batch = 4, inputs = 3, outputs = 2 }
g:mse_loss {} (d.y, d.y)
rlfr.train(g, { step = 3 })
