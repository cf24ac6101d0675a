-- expect: attempt to call a nil value
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local d = g:regression_data { batch = 4, inputs = 3, outputs = 2 }
local y = rlfr.not_a_function(d.x)
