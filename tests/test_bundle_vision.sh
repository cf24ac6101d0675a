#!/bin/bash
# Model bundles with a vision encoder, end to end through the CLI:
# rlfr.save_bundle{vision = vit} writes vision.safetensors + vision_config.json;
# rlfr.load gives m.vision from the directory and from the packed .tar.zst with
# identical weights (vit:digest()) and configuration, also when re-saved from
# objects loaded out of an archive whose temporary directory is gone; a bundle
# without an encoder loads exactly as before (m.vision == nil, no vision files
# written); an encoder whose output size is not the policy's hidden size is one
# error naming vision.safetensors, at save and at load (directory and archive);
# a corrupt vision.safetensors and a wrong 'vision' option name the problem.
# usage: bash test_bundle_vision.sh RLFR_BINARY SOURCE_DIR
set -u
. "$(dirname "$0")/lib.sh" "$@"

cat >vb.lua <<'EOF'
local rlfr = require "rlfr"
local failures = 0
local function check(ok, what)
  if not ok then
    failures = failures + 1
    print("FAIL: " .. what)
  end
end
-- f must fail with a one-line message containing every pattern (plain text).
local function fails(what, f, ...)
  local pats = { ... }
  local ok, msg = pcall(f)
  if ok then check(false, what .. ": no error") return end
  msg = tostring(msg)
  if os.getenv("RLFR_TEST_VERBOSE") then print(what .. " -> " .. msg) end
  for _, p in ipairs(pats) do check(msg:find(p, 1, true), what .. ": '" .. msg .. "' lacks '" .. p .. "'") end
  check(not msg:find("\n", 1, true), what .. ": message is not one line: " .. msg)
end
local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end
local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local function spit(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local tok = rlfr.train_tokenizer {
  texts = { "<think>The image shows 2 shapes.</think><answer>2</answer>", "How many circles?" },
  vocab_size = 270, special = { "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                                "<|image_pad|>", "<|vision_end|>" }, out = "tok.json" }
local pol = rlfr.new_policy { vocab_size = tok:vocab_size(), hidden_size = 32, num_hidden_layers = 2,
                              num_attention_heads = 2, num_key_value_heads = 1, intermediate_size = 64, seed = 1 }
local flow = rlfr.new_flow { policy = pol, width = 16, depth = 1, seed = 2 }
local vit = rlfr.new_vit { patch = 14, width = 16, depth = 1, heads = 2, mlp = 32, out_hidden = 32, seed = 3 }
local c = vit:config()
check(c.patch == 14 and c.merge == 2 and c.width == 16 and c.depth == 1 and c.heads == 2 and c.mlp == 32
      and c.out_hidden == 32 and c.channels == 3, "vit:config()")
check(vit:num_params() > 0, "vit:num_params()")

-- Round trip: directory, then the packed archive, then a re-save of what the
-- archive gave.
rlfr.save_bundle { dir = "vb", policy = pol, tokenizer = tok, flow = flow, vision = vit, meta = { note = "v" } }
check(exists("vb/vision.safetensors") and exists("vb/vision_config.json"), "vision files written")
local m = rlfr.load("vb")
check(m.vision ~= nil, "m.vision from the directory")
check(m.vision and m.vision:digest() == vit:digest(), "vision weights equal after the directory round trip")
check(m.vision and m.vision:config().out_hidden == 32, "vision config after the round trip")
check(m.policy:digest() == pol:digest() and m.flow:digest() == flow:digest(), "policy and flow unchanged")
check(m.meta.note == "v", "meta")
rlfr.pack("vb", "vb.tar.zst")
local a = rlfr.load("vb.tar.zst")
check(a.vision and a.vision:digest() == vit:digest(), "vision weights equal from the .tar.zst")
rlfr.save_bundle { dir = "vb2", policy = a.policy, tokenizer = a.tokenizer, vision = a.vision }
local b = rlfr.load("vb2")
check(b.vision and b.vision:digest() == vit:digest(), "re-saved from archive objects")
check(b.flow == nil, "no flow when none was saved")
check(slurp("vb/vision_config.json") == slurp("vb2/vision_config.json"), "vision_config.json identical")

-- Without an encoder: no vision files, m.vision nil, the rest as before.
rlfr.save_bundle { dir = "plain", policy = pol, tokenizer = tok, flow = flow }
check(not exists("plain/vision.safetensors") and not exists("plain/vision_config.json"), "no vision files")
local p = rlfr.load("plain")
check(p.vision == nil, "m.vision is nil without an encoder")
check(p.policy:digest() == pol:digest() and p.flow:digest() == flow:digest(), "plain bundle weights")
-- Replacing a vision bundle by a plain one removes the encoder.
rlfr.save_bundle { dir = "vb2", policy = pol, tokenizer = tok }
check(rlfr.load("vb2").vision == nil, "whole-bundle replacement drops the old encoder")

-- Mismatch: an encoder for another hidden size.
local vit16 = rlfr.new_vit { patch = 14, width = 16, depth = 1, heads = 2, mlp = 32, out_hidden = 16, seed = 4 }
fails("save with a mismatched encoder", function()
  rlfr.save_bundle { dir = "bad", policy = pol, vision = vit16 }
end, "save_bundle bad", "vision.safetensors", "16", "32")
check(not exists("bad/config.json"), "nothing written for the mismatched save")
rlfr.save_bundle { dir = "bad", policy = pol, tokenizer = tok }
rlfr.save_vit(vit16, "bad")
fails("load a mismatched encoder", function() rlfr.load("bad") end, "bad/vision.safetensors", "16", "32")
rlfr.pack("bad", "bad.tar.zst")
fails("load a mismatched encoder from an archive", function() rlfr.load("bad.tar.zst") end,
      "bad.tar.zst/vision.safetensors", "16", "32")

-- A corrupt encoder file, in a directory and in an archive.
rlfr.save_bundle { dir = "corrupt", policy = pol, vision = vit }
local s = slurp("corrupt/vision.safetensors")
spit("corrupt/vision.safetensors", s:sub(1, #s - 100))
fails("truncated vision.safetensors", function() rlfr.load("corrupt") end, "corrupt/vision.safetensors")
rlfr.pack("corrupt", "corrupt.tar.zst")
fails("truncated vision.safetensors in an archive", function() rlfr.load("corrupt.tar.zst") end,
      "corrupt.tar.zst/vision.safetensors")

fails("vision must be a vit", function() rlfr.save_bundle { dir = "x", policy = pol, vision = flow } end,
      "'vision' must be a vit object")

print(failures == 0 and "vision bundles: all checks passed" or ("vision bundles: " .. failures .. " failures"))
if failures > 0 then os.exit(1) end
EOF

if ! "$RLFR" run vb.lua --threads 1 >out 2>err; then
    fail "vb.lua failed:"
fi
cat out err
grep -q "all checks passed" out || fail "vb.lua did not pass"

test_finish test_bundle_vision
