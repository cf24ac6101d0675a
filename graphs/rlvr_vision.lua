-- RLVR: GRPO on the verifier's outcome rewards only (the baseline),
-- on the multimodal shapes task, from the shipped model models/shapes-tiny
-- (policy + vision encoder + flow).
--   rlfr run graphs/rlvr_vision.lua                         # prints accuracy_before=X accuracy_after=Y
--   rlfr run graphs/rlvr_vision.lua --set model=random --set steps=3   # micro model, no bundle needed
-- Every option is in graphs/lib/rl_vision.lua (what differs from the text
-- graphs) and graphs/lib/rl_text.lua (the rest); --set method=rlfr|rlvr|entropy
-- turns any of the three vision scripts into the others.
local dir = (require "rlfr").args.script:match("^(.*)[/\\]") or "."
dofile(dir .. "/lib/rl_vision.lua").main("rlvr")
