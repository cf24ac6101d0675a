-- expect: input 'x' is connected twice
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local d = g:regression_data { batch = 4, inputs = 3, outputs = 2 }
local a = g:silu {} (d.x)
g:connect(a, "x", d.y)
