-- expect: of the later phase 'update'
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local a = g:silu { name = "early" }            -- phase "main", created first
g:phase("update", function()
  local d = g:regression_data { batch = 4, inputs = 3, outputs = 2 }
  g:connect(a, "x", d.x)                      -- main would read from the later phase
end)
rlfr.train(g, { steps = 1, phases = { "main", "update" } })
