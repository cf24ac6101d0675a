-- expect: syntax_error.lua:6: ')' expected
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local d = g:regression_data { batch = 4, inputs = 3, outputs = 2 }
local y = g:silu {} (d.x
