-- Pieces shared by the SFT recipes graphs/sft_text.lua and graphs/sft_vision.lua
-- (rows_of also by the RL and offline-flow graphs).
--   local S = dofile(dir .. "/lib/sft.lua")
--   S.rows_of(t)         -- rows of a u8 [R, L] graph output as Lua strings (each up to its NUL)
--   S.command(script)    -- "rlfr run SCRIPT --seed S --threads N [--set ...]": this run's command
--                           line, recorded in the bundle's rlfr.json
local rlfr = require "rlfr"
local M = {}

function M.rows_of(t)
  local R, L = t.shape[1], t.shape[2]
  local rows = {}
  for r = 0, R - 1 do
    local bytes = {}
    for c = 1, L do
      local b = t[r * L + c]
      if b == 0 then break end
      bytes[#bytes + 1] = b
    end
    -- string.char takes its bytes as arguments: long rows go in pieces.
    local parts = {}
    for i = 1, #bytes, 4096 do parts[#parts + 1] = string.char(table.unpack(bytes, i, math.min(#bytes, i + 4095))) end
    rows[#rows + 1] = table.concat(parts)
  end
  return rows
end

function M.command(script)
  local sets = {}
  for _, s in ipairs(rlfr.args.set or {}) do sets[#sets + 1] = "--set " .. s end
  return string.format("rlfr run %s --seed %d --threads %d%s", script, rlfr.args.seed, rlfr.args.threads,
                       #sets > 0 and (" " .. table.concat(sets, " ")) or "")
end

return M
