#!/bin/bash
# The "models" Lua bindings end to end through the CLI: rlfr.new_policy /
# new_flow (configs, seeds, option errors), rlfr.save_bundle -> rlfr.load
# from the directory and from rlfr.pack's .tar.zst give identical
# parameters, tokenizer ids and metadata (also when re-saved from objects
# loaded out of an archive whose temporary directory is gone), bf16 weights,
# whole-bundle replacement without leftovers, and one clear error each for a
# missing bundle, a missing config.json, a corrupt model.safetensors (in a
# directory and inside an archive), a truncated archive, a bad rlfr.json, a
# flow that does not fit the policy, a non-bundle directory that save_bundle
# must not replace, and bad options; rlfr.json_encode / json_decode.
# usage: bash test_lua_models.sh RLFR_BINARY SOURCE_DIR
set -u
. "$(dirname "$0")/lib.sh" "$@"

cat >models.lua <<'EOF'
local rlfr = require "rlfr"
local failures = 0
local function check(ok, what)
  if not ok then
    failures = failures + 1
    print("FAIL: " .. what)
  end
end
-- f must fail with a message containing every pattern (plain text).
local function fails(what, f, ...)
  local pats = { ... }
  local ok, msg = pcall(f)
  if ok then check(false, what .. ": no error") return end
  msg = tostring(msg)
  if os.getenv("RLFR_TEST_VERBOSE") then print(what .. " -> " .. msg) end
  for _, p in ipairs(pats) do check(msg:find(p, 1, true), what .. ": '" .. msg .. "' lacks '" .. p .. "'") end
  check(not msg:find("\n", 1, true), what .. ": message is not one line: " .. msg)
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
local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- new_policy: HF keys, defaults, seeds
local P = { vocab_size = 300, hidden_size = 32, num_hidden_layers = 2, num_attention_heads = 4,
            num_key_value_heads = 2, intermediate_size = 64, seed = 7 }
local p = rlfr.new_policy(P)
local c = p:config()
check(c.vocab_size == 300 and c.hidden_size == 32 and c.num_hidden_layers == 2 and c.num_attention_heads == 4 and
      c.num_key_value_heads == 2 and c.intermediate_size == 64 and c.head_dim == 8, "policy config")
check(c.tie_word_embeddings == true and c.rope_theta == 10000 and math.abs(c.rms_norm_eps - 1e-6) < 1e-12,
      "policy defaults")
-- embed 300*32 + 2 layers * (2*32 norms + q 32*32+32 + k,v 2*(16*32+16) + o 32*32 + mlp 3*64*32) + norm 32 (tied)
local per_layer = 2 * 32 + (32 * 32 + 32) + 2 * (16 * 32 + 16) + 32 * 32 + 3 * 64 * 32
check(p:num_params() == 300 * 32 + 2 * per_layer + 32, "policy num_params " .. p:num_params())
check(rlfr.new_policy(P):digest() == p:digest(), "same seed, same weights")
P.seed = 8
check(rlfr.new_policy(P):digest() ~= p:digest(), "another seed, other weights")
P.seed = 7
local P2 = {}
for k, v in pairs(P) do P2[k] = v end
P2.tie_word_embeddings = false
check(rlfr.new_policy(P2):num_params() == p:num_params() + 300 * 32, "untied head adds lm_head.weight")
fails("unknown key", function() P2.hiden_size = 3; rlfr.new_policy(P2) end, "new_policy", "hiden_size", "hidden_size")
P2.hiden_size = nil
P2.vocab_size = nil
fails("missing key", function() rlfr.new_policy(P2) end, "new_policy", "vocab_size", "required")
P2.vocab_size = 2.5
fails("non-integer", function() rlfr.new_policy(P2) end, "vocab_size", "integer")
P2.vocab_size = 300
P2.num_attention_heads = 5
fails("bad sizes", function() rlfr.new_policy(P2) end, "5")

-- new_flow
local f = rlfr.new_flow { policy = p, width = 24, depth = 2, seed = 3 }
local fc = f:config()
check(fc.hidden == 32 and fc.width == 24 and fc.depth == 2, "flow config")
check(rlfr.new_flow { hidden = 32 }:config().width == 32 and rlfr.new_flow { hidden = 32 }:config().depth == 4,
      "flow defaults: width = hidden, depth 4")
check(rlfr.new_flow { hidden = 32, width = 24, depth = 2, seed = 3 }:digest() == f:digest(), "flow seed")
fails("flow without size", function() rlfr.new_flow { width = 8 } end, "new_flow", "hidden")
fails("flow hidden vs policy", function() rlfr.new_flow { policy = p, hidden = 16 } end, "16", "32")
fails("flow unknown key", function() rlfr.new_flow { hidden = 8, widht = 8 } end, "widht", "width")
fails("flow policy type", function() rlfr.new_flow { policy = f } end, "qwen2", "flow")

-- a tokenizer, a bundle, its archive
local texts = { "the cat sat on the mat. 12+30=42. \\boxed{42}", "Please reason step by step." }
local tok = rlfr.train_tokenizer { texts = texts, vocab_size = 280, min_frequency = 1,
                                   special = { "<|endoftext|>", "<|im_start|>", "<|im_end|>" }, out = "tok.json" }
local meta = { recipe = { lr = 1e-4, layers = { 0.25, 0.5, 0.75 }, name = "test" }, step = 12, ok = true,
               metrics = { acc = 0.375 } }
check(rlfr.save_bundle { dir = "b1", policy = p, tokenizer = tok, flow = f, meta = meta } == "b1", "save_bundle returns dir")
for _, name in ipairs { "config.json", "model.safetensors", "tokenizer.json", "flow.safetensors", "rlfr.json" } do
  check(io.open("b1/" .. name) ~= nil, "b1 has " .. name)
end
check(io.open("b1.tmp") == nil, "no b1.tmp left")
check(rlfr.pack("b1", "b1.tar.zst") == "b1.tar.zst", "pack returns its output")
local ids = tok:encode("the cat sat. \\boxed{42}")
local function same_bundle(m, what)
  check(m.policy:digest() == p:digest(), what .. ": policy weights")
  check(m.flow and m.flow:digest() == f:digest(), what .. ": flow weights")
  check(m.flow and m.flow:config().width == 24 and m.flow:config().depth == 2, what .. ": flow config")
  check(m.tokenizer and same_list(m.tokenizer:encode("the cat sat. \\boxed{42}"), ids), what .. ": tokenizer ids")
  check(m.meta.step == 12 and m.meta.ok == true and m.meta.recipe.name == "test" and m.meta.recipe.lr == 1e-4 and
        same_list(m.meta.recipe.layers, meta.recipe.layers) and m.meta.metrics.acc == 0.375, what .. ": meta")
  local mc = m.policy:config()
  for k, v in pairs(c) do check(mc[k] == v, what .. ": config " .. k) end
end
local m1 = rlfr.load("b1")
check(m1.dir == "b1", "dir field")
same_bundle(m1, "directory")
local m2 = rlfr.load("b1.tar.zst")
same_bundle(m2, "archive")
-- objects loaded from the archive outlive its temporary directory: save them again
collectgarbage()
rlfr.save_bundle { dir = "b2/", policy = m2.policy, tokenizer = m2.tokenizer, flow = m2.flow, meta = m2.meta }
same_bundle(rlfr.load("b2"), "re-saved from the archive")
check(slurp("b2/tokenizer.json") == slurp("tok.json"), "tokenizer.json carried byte for byte")
-- replacing a bundle replaces all of it (no stale flow), leaving no temporaries
spit("b2/notes.txt", "x")
rlfr.save_bundle { dir = "b2", policy = p }
local m3 = rlfr.load("b2")
check(m3.flow == nil and m3.tokenizer == nil and next(m3.meta) == nil, "replaced bundle has no flow/tokenizer/meta")
check(io.open("b2/notes.txt") == nil and io.open("b2.tmp") == nil and io.open("b2.old") == nil, "no leftovers")
-- bf16 weights: half the file, same config, close weights
rlfr.save_bundle { dir = "b16", policy = p, dtype = "bf16" }
local n32, n16 = #slurp("b1/model.safetensors"), #slurp("b16/model.safetensors")
check(n16 < n32 * 0.6, "bf16 file is about half: " .. n16 .. " vs " .. n32)
check(rlfr.load("b16").policy:config().hidden_size == 32, "bf16 bundle loads")
-- a model object works as a graph option after loading (teacher forcing + taps)
local g = rlfr.graph "use"
local toks = g:tokenize_pair { tokenizer = m2.tokenizer, template = "plain" }
check(toks ~= nil, "loaded tokenizer is a node option")

-- errors
fails("missing bundle", function() rlfr.load("nope") end, "nope")
os.execute("mkdir -p empty")
fails("no config.json", function() rlfr.load("empty") end, "empty", "config.json")
os.execute("cp -r b1 bad && cp -r b1 badj && cp -r b1 badf")
local st = slurp("b1/model.safetensors")
spit("bad/model.safetensors", st:sub(1, #st // 2))
fails("corrupt safetensors", function() rlfr.load("bad") end, "bad", "model.safetensors")
rlfr.pack("bad", "bad.tar.zst")
fails("corrupt safetensors in an archive", function() rlfr.load("bad.tar.zst") end, "bad.tar.zst", "model.safetensors")
local arc = slurp("b1.tar.zst")
spit("trunc.tar.zst", arc:sub(1, #arc // 2))
fails("truncated archive", function() rlfr.load("trunc.tar.zst") end, "trunc.tar.zst")
spit("badj/rlfr.json", "{\"step\": ")
fails("bad rlfr.json", function() rlfr.load("badj") end, "badj", "rlfr.json")
rlfr.save_flow(rlfr.new_flow { hidden = 16 }, "badf")
fails("flow that does not fit", function() rlfr.load("badf") end, "badf", "flow", "32")
os.execute("mkdir -p notabundle && echo hi > notabundle/precious.txt")
fails("non-bundle dir", function() rlfr.save_bundle { dir = "notabundle", policy = p } end, "notabundle", "refusing")
check(slurp("notabundle/precious.txt") == "hi\n", "non-bundle dir untouched")
fails("unknown save option", function() rlfr.save_bundle { dir = "x", policy = p, flwo = f } end, "flwo")
fails("save without policy", function() rlfr.save_bundle { dir = "x" } end, "policy")
fails("policy of another type", function() rlfr.save_bundle { dir = "x", policy = f } end, "policy", "qwen2")
fails("meta with a function", function() rlfr.save_bundle { dir = "x", policy = p, meta = { a = { fn = print } } } end,
      "meta.a.fn", "JSON")
fails("bad dtype", function() rlfr.save_bundle { dir = "x", policy = p, dtype = "f16" } end, "dtype")
fails("flow vs policy on save", function() rlfr.save_bundle { dir = "x", policy = p, flow = rlfr.new_flow { hidden = 16 } } end,
      "x", "32")
check(io.open("x") == nil and io.open("x.tmp") == nil, "failed saves write nothing")
fails("pack of a missing dir", function() rlfr.pack("nope", "nope.tar.zst") end, "nope")
fails("pack of a non-bundle", function() rlfr.pack("empty", "e.tar.zst") end, "empty", "config.json")

-- JSON helpers
check(rlfr.json_encode { b = { 1, 2.5, "q\"\n" }, a = true, c = {} } == '{"a":true,"b":[1,2.5,"q\\"\\n"],"c":{}}',
      "json_encode: " .. rlfr.json_encode { b = { 1, 2.5, "q\"\n" }, a = true, c = {} })
local v = rlfr.json_decode('{"a": [1, 2.5, "s"], "b": null, "c": {"d": false}}')
check(math.type(v.a[1]) == "integer" and v.a[2] == 2.5 and v.a[3] == "s" and v.b == nil and v.c.d == false, "json_decode")
check(rlfr.json_decode(rlfr.json_encode(meta, 2)).recipe.layers[3] == 0.75, "json round trip")
local cyc = {}
cyc.self = cyc
fails("json cycle", function() rlfr.json_encode(cyc) end, "json_encode", "deep")
fails("json NaN", function() rlfr.json_encode { x = 0 / 0 } end, "value.x")
fails("json mixed keys", function() rlfr.json_encode { 1, 2, x = 3 } end, "keys")
fails("json syntax", function() rlfr.json_decode('{"a": ') end, "json_decode", "line 1")

print(failures == 0 and "models: all checks passed" or ("models: " .. failures .. " failures"))
if failures > 0 then os.exit(1) end
EOF

if ! "$RLFR" run models.lua --threads 1 >out 2>err; then
    fail "models.lua failed:"
fi
cat out err
grep -q "all checks passed" out || fail "models.lua did not pass"

# A failing call is one error line naming the script line (exit status 1).
cat >err.lua <<'EOF'
local rlfr = require "rlfr"
local m = rlfr.load("missing-bundle")
EOF
"$RLFR" run err.lua >out 2>err
rc=$?
[ "$rc" = 1 ] || fail "missing bundle: exit status $rc"
[ "$(wc -l <err)" = 1 ] || fail "missing bundle: not one line: $(cat err)"
grep -q "^error: err.lua:2: .*missing-bundle" err || fail "missing bundle: message: $(cat err)"

test_finish test_lua_models
