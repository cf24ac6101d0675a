-- expect: option 'batch' must be a
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local d = g:regression_data { batch = "four", inputs = 3, outputs = 2 }
