-- expect: cycle
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local a = g:silu { name = "a" }
local b = g:silu { name = "b" } (a)
g:connect(a, "x", b)
g:compile()
