-- expect: list elements must be numbers or strings
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local d = g:regression_data { batch = 4, inputs = 3, outputs = 2 }
local p = rlfr.params { name = "p" }
g:optimizer { params = p, betas = { {0.9}, {0.99} } } (g:mse_loss {} (d.x, d.x))
