-- expect: input 'x' must be f32, but 'data.index' is i32
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local d = g:dataset { name = "data", task = "arith", batch = 2 }
local a = g:silu {} (d.index)   -- problem indices (i32) into an f32 port
g:output(a)
g:compile()
