-- RLVR: GRPO on the verifier's outcome rewards only (the baseline),
-- on the arithmetic text task, from the shipped model models/arith-tiny.
--   rlfr run graphs/rlvr_text.lua                         # prints accuracy_before=X accuracy_after=Y
--   rlfr run graphs/rlvr_text.lua --set model=random --set steps=3   # micro model, no bundle needed
-- Every option (learning rates, steps, flow settings, ...) is in
-- graphs/lib/rl_text.lua; the three RL scripts differ only in 'method', so
-- --set method=rlfr|rlvr|entropy turns any of them into the others.
local dir = (require "rlfr").args.script:match("^(.*)[/\\]") or "."
dofile(dir .. "/lib/rl_text.lua").main("rlvr")
