-- expect: input 'reward' must have rank 1
local rlfr = require "rlfr"
local g = rlfr.graph "broken"
local d = g:regression_data { batch = 4, inputs = 3, outputs = 2 }
-- rewards are one per response ([N]); a [batch, inputs] matrix is not
local adv = g:shaper { group = 2 } { reward = d.x, mask = d.y }
g:output(adv.advantages)
g:compile()
