-- The RL graphs for the text task, shared by graphs/rlfr_text.lua,
-- graphs/rlvr_text.lua and graphs/entropy_text.lua. The three differ in one
-- word, `method`, which only changes the shaping of the advantages:
--   rlvr    : outcome reward -> group-normalised advantage (GRPO)
--   rlfr    : + per-token flow rewards r = -beta * normalised flow score
--   entropy : + entropy bonus min(alpha*H, |A|/kappa) (Cheng et al. 2025)
-- so `--set method=rlvr` on any of them is the ablation. docs/rl_graphs.md
-- describes the graph, its options and the metrics.
--
-- Usage (from a graph script):  dofile("graphs/lib/rl_text.lua").main("rlfr")
local rlfr = require "rlfr"
local core = require "rlfr.core"

local M = {}
local fmt = string.format

-- Stops the script with one line naming what is wrong, located at the line
-- of the graph script (graphs/X_text.lua) that called main, not at this file.
local function die(...)
  local script = rlfr.args.script
  for level = 2, 50 do
    local info = debug.getinfo(level, "Sl")
    if not info then break end
    if info.short_src == script and info.currentline and info.currentline > 0 then
      error(fmt("%s:%d: %s", script, info.currentline, fmt(...)), 0)
    end
  end
  error(fmt(...), 2)
end

local METHODS = { rlfr = true, rlvr = true, entropy = true }

-- Every default of the reference runs (DESIGN.md section 2) that is not a
-- node default is written here; learning rates and step counts are ours,
-- tuned for the tiny model (docs/rl_graphs.md gives the measurements).
local function defaults(method)
  return {
    method = method,             -- rlfr | rlvr | entropy
    model = "models/arith-tiny", -- bundle directory or .tar.zst; "random": micro model (tests)
    steps = 30,                  -- RL steps (one rollout batch each)
    updates = 1,                 -- policy updates per rollout batch (PPO epochs)
    batch = 16,                  -- prompts per step
    group = 8,                   -- G: samples per prompt (reference)
    max_new = 64,                -- most response tokens (the tiny model's solutions are < 40)
    temperature = 1.0,           -- reference
    lr = 3e-5,                   -- actor (reference: 1e-6 for 7B models); tuned on arith-tiny: 1e-4 lowers greedy accuracy
    warmup = 0,                  -- actor lr warmup (updates)
    grad_clip = 1.0,             -- reference
    clip = 0.2,                  -- PPO epsilon (reference 0.2 / 0.2)
    clip_high = -1.0,            -- < 0: same as clip; 0.28 is DAPO's clip-higher
    agg = "seq_mean_token_mean", -- reference aggregation
    estimator = "group_norm",    -- GRPO
    kl = 0.0,                    -- KL in the reward needs a reference policy: off, as in the reference RLFR runs
    partial = 0.5,               -- reward of a boxed but wrong answer (reference)
    prompt_len = 256,            -- longest prompt in tokens (longer prompts are cut; the task needs < 160)
    shared_prefix = true,        -- policy forwards compute each prompt once for its G samples (false: once per row)
    seed = 1,                    -- data order and sampling streams (plus --seed)
    task = { steps = 3, min_steps = 0, max_value = 30, max_factor = 9, ops = "+-*/", task_seed = 0 },
    flow = {
      coef = 0.01,               -- beta (reference)
      t = { 0.8 },               -- reward timesteps (reference)
      threshold = 0.6,           -- eta (reference)
      topk = 15,                 -- reference
      norm = "minmax",           -- or minmax_bilateral
      power = 1.0,
      layers = { 0.25, 0.5, 0.75 }, -- reference
      context = { "token_pre" },  -- reference
      lr = 1e-4,                 -- online flow update (reference)
      soft = 0.0,                -- weight of wrong rollouts in the flow update (0: rejection sampling)
      correct = 1.0,             -- reward >= this counts as correct for the flow update (reference: 1)
      skip_rejected = true,      -- flow update computes no rows of zero-weight rollouts (false: all, for timing)
    },
    entropy = { alpha = 0.4, kappa = 2.0 }, -- Cheng et al. 2025, GRPO values
    eval = {
      every = 10,                -- evaluate every N steps (and before / after training)
      n = 256,                   -- test problems (greedy pass@1)
      max_new = 64,
    },
    out = "",                    -- run directory ("" = runs/<method>_text); --out overrides
    save = true,                 -- write OUT/final (the trained bundle) at the end
    checkpoint_every = 10,       -- checkpoint period (0: none); a rerun with the same out resumes
    -- model = "random" only: a micro policy, a tokenizer trained on the task's
    -- texts, a random flow, and a few SFT steps so rewards vary (a policy that
    -- never writes \boxed{} gives every rollout the same reward: no gradient).
    micro = {
      vocab = 320, hidden = 32, layers = 4, heads = 2, kv_heads = 1, intermediate = 64,
      flow_width = 32, flow_depth = 2, texts = 256, sft_steps = 100, sft_batch = 16, sft_lr = 5e-3,
    },
  }
end

-- ---------------------------------------------------------------- helpers

local function task_opts(cfg, extra)
  local o = {
    task = "arith", steps = cfg.task.steps, min_steps = cfg.task.min_steps, max_value = cfg.task.max_value,
    max_factor = cfg.task.max_factor, ops = cfg.task.ops, task_seed = cfg.task.task_seed,
  }
  for k, v in pairs(extra) do o[k] = v end
  return o
end

-- Rows of a u8 [R, L] graph output as Lua strings (up to each row's NUL).
-- (lib/sft.lua beside this file, wherever the calling script lives.)
local here = debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or "."
local rows_of = dofile(here .. "/sft.lua").rows_of

local function need(fn, what)
  if type(rlfr[fn]) ~= "function" then
    die("rlfr.%s is not available in this build (needed for %s)", fn, what)
  end
end

-- ---------------------------------------------------------------- models

-- Runs a micro-SFT graph (its ce_loss node named "ce") for `steps` steps and
-- prints how the loss moved: the warm-up of the model = "random" modes.
local function run_micro_sft(sg, steps)
  local first, last
  for i = 1, steps do
    sg:run(nil, i - 1)
    local l = sg:metrics()["ce.loss"]
    first = first or l
    last = l
  end
  print(fmt("micro SFT: %d steps, loss %.3f -> %.3f", steps, first, last))
end

-- A micro policy + tokenizer + flow for tests and for trying the graph
-- before a trained bundle exists.
local function random_model(cfg, out, seed)
  need("new_policy", "model=random")
  need("new_flow", "model=random")
  local mc = cfg.micro
  -- Tokenizer: BPE trained on the task's own prompts and solutions, plus the
  -- system prompt, so the chat template encodes compactly.
  local tg = rlfr.graph "rl-texts"
  local d = tg:dataset(task_opts(cfg, { split = "train", batch = mc.texts, seed = seed }))
  tg:output(d.prompt)
  tg:output(d.solution)
  tg:run()
  local texts = rows_of(tg:read(d.prompt))
  for _, s in ipairs(rows_of(tg:read(d.solution))) do texts[#texts + 1] = s end
  texts[#texts + 1] = "Please reason step by step, and put your final answer within \\boxed{}."
  local tok = rlfr.train_tokenizer {
    texts = texts, vocab_size = mc.vocab, min_frequency = 2,
    special = { "<|endoftext|>", "<|im_start|>", "<|im_end|>" }, out = out .. "/tokenizer.json",
  }
  local policy = rlfr.new_policy {
    vocab_size = tok:vocab_size(), hidden_size = mc.hidden, num_hidden_layers = mc.layers,
    num_attention_heads = mc.heads, num_key_value_heads = mc.kv_heads, intermediate_size = mc.intermediate,
    max_position_embeddings = 1024, tie_word_embeddings = true, seed = seed,
  }
  local flow = rlfr.new_flow { hidden = mc.hidden, width = mc.flow_width, depth = mc.flow_depth, seed = seed + 1 }
  if mc.sft_steps > 0 and rlfr.args.mode ~= "plan" then
    -- Teacher-forced SFT on expert solutions: enough for the micro model to
    -- write "... \boxed{...}" often, so outcome rewards differ within groups.
    local sg = rlfr.graph "rl-micro-sft"
    local sd = sg:dataset(task_opts(cfg, { name = "data", split = "train", batch = mc.sft_batch, seed = seed + 2 }))
    local tp = sg:tokenize_pair { name = "pair", tokenizer = tok } (sd.prompt, sd.solution)
    local fw = sg:policy { name = "policy", net = policy } (tp.tokens, tp.lengths)
    local ce = sg:ce_loss { name = "ce" } (fw.logprobs, tp.mask)
    sg:optimizer { name = "opt", params = policy, lr = mc.sft_lr, betas = { 0.9, 0.95 }, clip = 1.0 } (ce)
    run_micro_sft(sg, mc.sft_steps)
  end
  return { policy = policy, tokenizer = tok, flow = flow, dir = "random", meta = {} }
end

local function load_model(cfg, out, seed)
  if cfg.model == "random" then return random_model(cfg, out, seed) end
  need("load", "loading " .. cfg.model)
  local m = rlfr.load(cfg.model)
  if not m.tokenizer then
    die("%s: the bundle has no tokenizer.json (the RL graph needs it to build prompts)", cfg.model)
  end
  if cfg.method == "rlfr" and not m.flow then
    die("%s: the bundle has no flow (flow.safetensors), which method=rlfr needs for its flow rewards; " ..
        "train one with graphs/flow_offline.lua, or run --set method=rlvr", cfg.model)
  end
  return m
end

-- ---------------------------------------------------------------- graphs

-- Greedy pass@1 on the first n problems of the test split; shares the
-- policy object with the training graph, so it sees the current weights.
local function make_eval(cfg, m, eos, seed)
  local e = rlfr.graph "rl-eval"
  local n = cfg.eval.n
  local d = e:dataset(task_opts(cfg, { name = "data", split = "test", batch = n, size = n, shuffle = false }))
  local p = e:tokenize { name = "prompt", tokenizer = m.tokenizer, max_len = cfg.prompt_len, truncate = true } (d.prompt)
  local s = e:sampler { name = "sampler", net = m.policy, group = 1, greedy = true, max_new = cfg.eval.max_new,
                        stop = { eos }, seed = seed } (p.tokens, p.lengths)
  -- One sample per prompt: the prompt lengths are the responses' starts.
  local txt = e:detokenize { name = "text", tokenizer = m.tokenizer, max_bytes = 8 * cfg.eval.max_new + 64 }
                (s.tokens, s.lengths, p.lengths)
  e:verifier { name = "verify", group = 1, partial = cfg.partial } (txt, d.answer, s.finished)
  return function()
    e:run(nil, 0)
    local mt = e:metrics()
    return mt["verify.accuracy"], mt["sampler.response_len"]
  end
end

-- What a task adds to the shared training graph (make_train). The text task
-- only supplies its prompts; graphs/lib/rl_vision.lua supplies images too.
--   io.prompts(g) -> data (outputs answer, index), prompt (tokens, lengths)
--   io.extend(g, kind, opts, inputs), optional: adds options and inputs to
--     the node of type `kind` (sampler, detokenize, verifier, policy) that
--     make_train is about to create (the vision graphs: the image splice)
--   io.after_update(g, loss), optional: more optimizers on the policy loss
local function text_io(cfg, m, seed)
  return {
    prompts = function(g)
      local d = g:dataset(task_opts(cfg, { name = "data", split = "train", batch = cfg.batch, seed = seed }))
      local p = g:tokenize { name = "prompt", tokenizer = m.tokenizer, max_len = cfg.prompt_len, truncate = true }
                  (d.prompt)
      return d, p
    end,
  }
end

-- The training graph: phases rollout -> score -> update.
local function make_train(cfg, m, eos, seed, io)
  io = io or text_io(cfg, m, seed)
  local method, G = cfg.method, cfg.group
  local g = rlfr.graph("rl-" .. method)
  local d, s, v, adv, old_lp, lat
  local refs = {}
  -- Teacher-forced policy forwards over the rollouts share each prompt
  -- among its G samples (computed once; same results up to float summation
  -- order); the sampler's `start` says where each row's prompt ends.
  local share = cfg.shared_prefix ~= false and G > 1
  local function pol_opts(o) o.group = share and G or 1; return o end
  local function pol_in() return { tokens = s.tokens, lengths = s.lengths, prompt_len = share and s.start or nil } end
  -- g:kind(opts)(inputs), with what the task's io adds to that kind of node.
  local function node(kind, opts, inputs)
    if io.extend then io.extend(g, kind, opts, inputs) end
    return g:node(kind, opts)(inputs)
  end
  g:phase("rollout", function()
    local p
    d, p = io.prompts(g)
    local so = { name = "sampler", net = m.policy, group = G, max_new = cfg.max_new,
                 temperature = cfg.temperature, stop = { eos }, seed = seed }
    s = node("sampler", so, { prompt = p.tokens, prompt_len = p.lengths, prompt_id = d.index })
    -- Suppressed tokens renormalise the sampling distribution: its log-probs
    -- are then no longer the policy's own (see the score phase).
    refs.sampler_exact = so.suppress == nil or #so.suppress == 0
    -- The verifier must see the response only: the sampler's rows hold the
    -- prompt too, and `start` says where each row's response begins.
    local txt = node("detokenize", { name = "text", tokenizer = m.tokenizer, max_bytes = 8 * cfg.max_new + 2048 },
                     { tokens = s.tokens, lengths = s.lengths, start = s.start })
    v = node("verifier", { name = "verify", group = G, partial = cfg.partial },
             { text = txt, answer = d.answer, finished = s.finished })
    refs.data, refs.prompt, refs.sampler, refs.verify = d, p, s, v
  end)
  g:phase("score", function()
    local sh = {
      name = "shaper", estimator = cfg.estimator, group = G, flow_coef = cfg.flow.coef, norm = cfg.flow.norm,
      power = cfg.flow.power, threshold = cfg.flow.threshold, topk = cfg.flow.topk,
    }
    if method == "rlfr" then
      -- A frozen forward of the policy before the update: its taps feed the
      -- flow, and its log-probs are the PPO old log-probs (exactly those of
      -- the training forward's weights, so the first update's ratio is 1).
      local fz = node("policy", pol_opts { name = "old", net = m.policy, tap_layers = cfg.flow.layers }, pol_in())
      lat = g:latent_tap { name = "tap", context = cfg.flow.context } (fz.hidden, fz.tau, s.mask, s.lengths)
      local fs = g:flow { name = "flow_score", net = m.flow, mode = "score", t = cfg.flow.t }
                   (lat.target, lat.cond, lat.tau, lat.index, s.mask)
      -- score_mask: tokens without a context partner (token_pre: the last
      -- response token) have no score; their 0 must not act as the minimum.
      adv = g:shaper(sh) { reward = v.reward, mask = s.mask, score = fs.score, score_mask = fs.score_mask }
      old_lp = fz.logprobs
    else
      -- At temperature 1 the sampler's log-probs are the policy's own
      -- (no extra forward); any other temperature, or suppressed tokens,
      -- need a frozen forward.
      if cfg.temperature == 1.0 and refs.sampler_exact then
        old_lp = s.logprobs
      else
        old_lp = node("policy", pol_opts { name = "old", net = m.policy }, pol_in()).logprobs
      end
      adv = g:shaper(sh) { reward = v.reward, mask = s.mask }
    end
    refs.shaper = adv
  end)
  g:phase("update", function()
    local fw = node("policy", pol_opts { name = "actor", net = m.policy }, pol_in())
    local a = adv.advantages
    if method == "entropy" then
      a = g:entropy_shaper { name = "entropy_shaper", alpha = cfg.entropy.alpha, kappa = cfg.entropy.kappa }
            (a, fw.entropy, s.mask)
    end
    local loss = g:pg_loss { name = "pg", clip = cfg.clip, clip_high = cfg.clip_high, agg = cfg.agg }
                   { logprobs = fw.logprobs, old_logprobs = old_lp, advantages = a, mask = s.mask,
                     entropy = fw.entropy }
    g:optimizer { name = "actor_opt", params = m.policy, lr = cfg.lr, betas = { 0.9, 0.95 }, clip = cfg.grad_clip,
                  warmup = cfg.warmup } (loss)
    if io.after_update then io.after_update(g, loss) end
    if method == "rlfr" then
      -- Online flow update on the rollouts' latents, correct ones only
      -- (rejection sampling), at the reward timesteps. The response weights
      -- are computed once; the flow skips the rows of weight-0 rollouts
      -- (all wrong ones when soft = 0), which contribute nothing to the loss.
      local fwt = g:flow_weights { name = "flow_weights", soft_flow = cfg.flow.soft, correct = cfg.flow.correct }
                    (v.reward)
      local ft = g:flow { name = "flow_train", net = m.flow, mode = "score", t = cfg.flow.t }
                   { target = lat.target, cond = lat.cond, tau = lat.tau, index = lat.index, mask = s.mask,
                     weight = cfg.flow.skip_rejected ~= false and fwt.weight or nil }
      local fl = g:flow_loss { name = "flow_loss", group = G }
                   { token_loss = ft.token_loss, weight = fwt.weight, mask = s.mask }
      g:optimizer { name = "flow_opt", params = m.flow, lr = cfg.flow.lr, betas = { 0.9, 0.95 } } (fl)
    end
  end)
  return g, refs
end

-- Wall-clock time of each phase of `g`, as metrics time_rollout, time_score,
-- time_update. rlfr.train runs the phases itself, so the timing wraps the
-- core's run function for this graph only (other graphs pass through).
local function time_phases_(g, phases)
  local run, metrics = core.run, core.metrics
  local spent, cur_step = {}, nil
  core.run = function(c, phase, step, ...)
    if c ~= g._c then return run(c, phase, step, ...) end
    if step ~= cur_step then spent, cur_step = {}, step end
    local t0 = core.clock()
    run(c, phase, step, ...)
    local k = "time_" .. (phase or "all")
    spent[k] = (spent[k] or 0) + core.clock() - t0
  end
  core.metrics = function(c, ...)
    local keys, values, nodes = metrics(c, ...)
    if c == g._c and cur_step ~= nil then
      for _, ph in ipairs(phases) do
        local k = "time_" .. ph
        if values[k] == nil then keys[#keys + 1] = k end
        values[k] = spent[k] or 0
      end
    end
    return keys, values, nodes
  end
end

-- rlfr.train with checkpoints when the driver knows them, else without.
local function train(g, opts, every)
  if every > 0 then
    opts.checkpoint_every = every
    local ok, res = pcall(rlfr.train, g, opts)
    if ok then return res end
    if not tostring(res):find("checkpoint_every", 1, true) then error(res, 0) end
    io.stderr:write("note: this rlfr.train has no checkpoints; running without\n")
    opts.checkpoint_every = nil
  end
  return rlfr.train(g, opts)
end

M.defaults, M.random_model, M.load_model, M.make_eval, M.make_train, M.time_phases, M.die =
  defaults, random_model, load_model, make_eval, make_train, time_phases_, die
M.rows_of, M.need, M.train, M.text_io, M.METHODS = rows_of, need, train, text_io, METHODS
M.run_micro_sft = run_micro_sft

-- ---------------------------------------------------------------- main

-- A task for M.run: its name (scripts are graphs/<method>_<name>.lua, runs
-- go to runs/<method>_<name>), its defaults, model loader, evaluation and
-- training io; `bundle(m, t, cfg)` adds the task's parts to a save_bundle table.
M.TEXT = {
  name = "text", defaults = defaults, load_model = load_model, make_eval = make_eval,
  io = function(cfg, m, seed) return text_io(cfg, m, seed) end,
}

-- The whole run: evaluate, train `cfg.steps` RL steps (checkpointed,
-- resumable), evaluate, save OUT/final, print the accuracy line.
function M.run(task, method_default)
  local cfg = rlfr.config(task.defaults(method_default))
  if not METHODS[cfg.method] then
    die("--set method=%s: unknown method (rlfr, rlvr or entropy)", cfg.method)
  end
  local m -- the model (loaded below)
  local function bundle(t)
    if task.bundle then task.bundle(m, t, cfg) end
    return t
  end
  local out = rlfr.args.out or (cfg.out ~= "" and cfg.out) or ("runs/" .. cfg.method .. "_" .. task.name)
  if rlfr.args.mode == "plan" and not rlfr.args.out then
    -- `rlfr plan` writes nothing into runs/ (a micro tokenizer goes to /tmp)
    out = os.tmpname() .. ".d"
  end
  local ok, merr = core.mkdir_p(out)
  if not ok then die("%s", merr) end
  local seed = cfg.seed + rlfr.args.seed
  m = task.load_model(cfg, out, seed)
  local eos = m.tokenizer:token_id("<|im_end|>")
  if not eos then die("%s: the tokenizer has no <|im_end|> token (the chat template's end)", cfg.model) end
  if cfg.model == "random" and cfg.save and rlfr.save_bundle and rlfr.args.mode ~= "plan" then
    -- The starting point, so a test can tell that training changed the weights.
    rlfr.save_bundle(bundle { dir = out .. "/init", policy = m.policy, tokenizer = m.tokenizer, flow = m.flow,
                              meta = { recipe = "rl_" .. task.name .. " random init", seed = seed } })
  end

  local evaluate = task.make_eval(cfg, m, eos, seed)
  local g = make_train(cfg, m, eos, seed, task.io(cfg, m, seed))
  if rlfr.args.mode == "plan" then
    -- `rlfr plan`: rlfr.train prints the training graph's plan and stops.
    rlfr.train(g, { steps = cfg.steps, phases = { "rollout", "score", { "update", cfg.updates } }, out = out })
  end
  local t0 = core.clock()
  local acc_before, len_before = evaluate()
  local t_eval = core.clock() - t0
  print(fmt("method=%s model=%s steps=%d batch=%dx%d  test accuracy before: %.4f (greedy pass@1, %d problems, " ..
            "mean response %.1f tokens, %.1fs)", cfg.method, cfg.model, cfg.steps, cfg.batch, cfg.group, acc_before,
            cfg.eval.n, len_before, t_eval))

  local phases = { "rollout", "score", { "update", cfg.updates } }
  M.time_phases(g, { "rollout", "score", "update" })
  local acc_after, evaluated = acc_before, false
  local run = train(g, {
    steps = cfg.steps, phases = phases, out = out, log_every = 1,
    metrics = { "verify.accuracy", "verify.reward_mean", "pg.loss", "sampler.response_len" },
    eval_every = cfg.eval.every,
    eval = function(step)
      local acc = evaluate()
      if step == cfg.steps then acc_after, evaluated = acc, true end
      return { test_accuracy = acc }
    end,
  }, cfg.checkpoint_every)
  -- A run resumed from its last checkpoint trains no step: evaluate here.
  if not evaluated then acc_after = evaluate() end

  if cfg.save and rlfr.save_bundle then
    local meta = {
      recipe = "graphs/" .. cfg.method .. "_" .. task.name .. ".lua", method = cfg.method, start = cfg.model, seed = seed,
      steps = cfg.steps, lr = cfg.lr, batch = cfg.batch, group = cfg.group, flow_coef = cfg.flow.coef,
      accuracy_before = acc_before, accuracy_after = acc_after,
    }
    rlfr.save_bundle(bundle { dir = out .. "/final", policy = m.policy, tokenizer = m.tokenizer, flow = m.flow,
                              meta = meta })
  end
  print(fmt("trained %d steps in %.1fs (%s); metrics in %s", run.steps, run.seconds, cfg.method, run.metrics_file))
  print(fmt("accuracy_before=%.4f accuracy_after=%.4f", acc_before, acc_after))
  return { before = acc_before, after = acc_after, run = run, cfg = cfg }
end

function M.main(method_default) return M.run(M.TEXT, method_default) end

return M
