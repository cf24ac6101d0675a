-- expect: node 'mse_loss' (mse_loss): input 'target' is not connected
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local d = g:regression_data { batch = 4, inputs = 3, outputs = 2 }
local loss = g:mse_loss {} (d.y)
rlfr.train(g, { steps = 1 })
