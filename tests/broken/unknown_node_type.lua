-- expect: unknown node type 'lineer' (did you mean 'linear'?)
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local p = rlfr.params { name = "p" }
local d = g:regression_data { batch = 4, inputs = 3, outputs = 2 }
local y = g:lineer { params = p, prefix = "fc", inputs = 3, outputs = 2 } (d.x)
