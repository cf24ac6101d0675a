-- expect: node 'fc' (linear)
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local p = rlfr.params { name = "p" }
local d = g:regression_data { batch = 4, inputs = 3, outputs = 2 }
-- the data has 3 features, the layer expects 5
local y = g:linear { name = "fc", params = p, prefix = "fc", inputs = 5, outputs = 2 } (d.x)
g:optimizer { params = p } (g:mse_loss {} (y, d.y))
rlfr.train(g, { steps = 1 })
