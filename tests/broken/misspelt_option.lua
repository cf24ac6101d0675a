-- expect: unknown option 'ouputs' (did you mean 'outputs'?)
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local p = rlfr.params { name = "p" }
local d = g:regression_data { batch = 4, inputs = 3, outputs = 2 }
local y = g:linear { params = p, prefix = "fc", inputs = 3, ouputs = 2 } (d.x)
