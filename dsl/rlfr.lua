-- The `rlfr` module (require "rlfr"): the graph builder, script options
-- (rlfr.config + --set) and the training driver, over the C primitives of
-- "rlfr.core". Errors are raised with core.raise, which names the line of the
-- user's script (never a line of this prelude); errors about a node already
-- carry the node's own location from the C core.
local core = require "rlfr.core"
local args = require "rlfr.args"

local rlfr = { version = core.version, args = args }

local fmt = string.format

local function fail(...)
  core.raise(fmt(...))
end

-- The candidate closest to `name` by edit distance, if it is close enough to
-- be a plausible misspelling.
local function closest(name, candidates)
  local best, best_d
  for _, c in ipairs(candidates) do
    local d = core.edit_distance(name, c)
    if not best_d or d < best_d then best, best_d = c, d end
  end
  -- A one-letter name is "one edit" from every other one-letter name: no hint then.
  if best and best_d <= math.max(2, #name // 3) and best_d < #name then return best end
end

local function did_you_mean(name, candidates)
  local c = closest(name, candidates)
  return c and fmt(" (did you mean '%s'?)", c) or ""
end

-- ---------------------------------------------------------------- node types

local type_cache = {}
local function type_info(name)
  local t = type_cache[name]
  if t == nil then
    t = core.type_info(name) or false
    type_cache[name] = t
  end
  return t or nil
end

--- rlfr.nodes() -> list of registered node type names
function rlfr.nodes() return core.type_names() end
--- rlfr.node_info(name) -> {name, doc, inputs, outputs, options} or nil
function rlfr.node_info(name) return type_info(name) end

-- ---------------------------------------------------------------- graphs

local Graph = {}          -- methods of a graph
local node_mt, ref_mt = {}, {}
local graph_mt = {}
local last_graph          -- for `rlfr plan` on a script that never trains
local trained = false
local PHASE_DEFAULT = "main"

local function is_graph(g) return getmetatable(g) == graph_mt end
local function is_node(v) return getmetatable(v) == node_mt end
local function is_ref(v) return getmetatable(v) == ref_mt end

local function node_desc(n)
  return fmt("node '%s' (%s)", rawget(n, "_label"), rawget(n, "_type"))
end

local function port_names(ports)
  local names = {}
  for i, p in ipairs(ports) do names[i] = p.name end
  return names
end

-- An input value -> (node, 0-based output port).
local function resolve(g, v, what)
  local node, port
  if is_node(v) then
    node, port = v, 0
    if #node._info.outputs == 0 then
      fail("%s: %s has no outputs", what, node_desc(node))
    end
  elseif is_ref(v) then
    node, port = v.node, v.port
  else
    fail("%s: expected a node or an output (node.port), got %s", what, type(v))
  end
  if node._g ~= g then
    fail("%s: %s belongs to another graph ('%s')", what, node_desc(node), node._g.name)
  end
  return node, port
end

local function connect(g, dst, i, src_value)
  local spec = dst._info.inputs[i]
  local what = fmt("input '%s' of %s", spec.name, node_desc(dst))
  local src, sport = resolve(g, src_value, what)
  core.connect(g._c, dst._id, i - 1, src._id, sport)
end

local function input_index(node, key)
  local inputs = node._info.inputs
  if type(key) == "number" then
    if math.type(key) ~= "integer" or key < 1 or key > #inputs then
      fail("%s has no input #%s (it has %d)", node_desc(node), tostring(key), #inputs)
    end
    return key
  end
  for i, p in ipairs(inputs) do
    if p.name == key then return i end
  end
  local names = port_names(inputs)
  fail("%s has no input '%s'%s (inputs: %s)", node_desc(node), tostring(key),
       did_you_mean(tostring(key), names), #names > 0 and table.concat(names, ", ") or "none")
end

-- node(a, b) connects inputs in port order; node{ x = a, target = b } by name.
node_mt.__call = function(node, ...)
  local g = node._g
  if node._applied and select("#", ...) > 0 then
    fail("%s already has its inputs; create another node for other inputs", node_desc(node))
  end
  local nargs = select("#", ...)
  if nargs == 0 then return node end -- node(): nothing to connect
  node._applied = true
  local first = ...
  local inputs = node._info.inputs
  if nargs == 1 and type(first) == "table" and not is_node(first) and not is_ref(first) then
    for k, v in pairs(first) do
      if type(k) ~= "string" then
        fail("%s: named inputs must be given as name = value (inputs: %s)", node_desc(node),
             table.concat(port_names(inputs), ", "))
      end
      connect(g, node, input_index(node, k), v)
    end
  else
    if nargs > #inputs then
      fail("%s takes %d input%s (%s), got %d", node_desc(node), #inputs, #inputs == 1 and "" or "s",
           table.concat(port_names(inputs), ", "), nargs)
    end
    for i = 1, nargs do
      local v = select(i, ...)
      if v == nil then
        fail("input '%s' of %s is nil (an undefined variable?)", inputs[i].name, node_desc(node))
      end
      connect(g, node, i, v)
    end
  end
  return node
end

-- node.port -> output reference
node_mt.__index = function(node, key)
  local outputs = rawget(node, "_info").outputs
  for i, p in ipairs(outputs) do
    if p.name == key then
      local refs = rawget(node, "_refs")
      local r = refs[i]
      if not r then
        r = setmetatable({ node = node, port = i - 1, name = key }, ref_mt)
        refs[i] = r
      end
      return r
    end
  end
  local names = port_names(outputs)
  fail("%s has no output '%s'%s (outputs: %s)", node_desc(node), tostring(key),
       did_you_mean(tostring(key), names), #names > 0 and table.concat(names, ", ") or "none")
end

node_mt.__newindex = function(node, key)
  fail("%s: cannot set field '%s' (connect inputs with node(...) or g:connect)", node_desc(node), tostring(key))
end

node_mt.__tostring = function(node)
  return fmt("%s at %s", node_desc(node), rawget(node, "_where"))
end

ref_mt.__tostring = function(r)
  return fmt("%s.%s", tostring(rawget(r.node, "_label")), r.name)
end

local function new_node(g, tname, opts)
  if not is_graph(g) then
    fail("call node constructors with a colon: g:%s{ ... }", tname)
  end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" or is_node(opts) or is_ref(opts) then
    fail("%s: options must be a table: g:%s{ key = value, ... }(inputs)", tname, tname)
  end
  local label, phase = opts.name, opts.phase or g._phase
  if label ~= nil and type(label) ~= "string" then fail("%s: option 'name' must be a string", tname) end
  if type(phase) ~= "string" then fail("%s: option 'phase' must be a string", tname) end
  local where = core.where()
  -- The C core checks the type name (suggesting the closest) and the options.
  local id = core.add(g._c, tname, label, where, phase, opts)
  local info = type_info(tname)
  local lbl = core.node_info(g._c, id)
  local node = setmetatable({}, node_mt)
  rawset(node, "_g", g)
  rawset(node, "_id", id)
  rawset(node, "_type", tname)
  rawset(node, "_info", info)
  rawset(node, "_label", lbl)
  rawset(node, "_where", where)
  rawset(node, "_refs", {})
  rawset(node, "_applied", #info.inputs == 0)
  g._nodes[#g._nodes + 1] = node
  return node
end

graph_mt.__index = function(g, key)
  local m = Graph[key]
  if m ~= nil then return m end
  if type(key) ~= "string" or key:sub(1, 1) == "_" then return nil end
  -- g:TYPE{opts}: any other name is a node type (checked when called).
  return function(self, opts) return new_node(self, key, opts) end
end

graph_mt.__tostring = function(g) return fmt("graph '%s' (%d nodes)", g.name, #g._nodes) end

--- rlfr.graph "name" -> a new graph
function rlfr.graph(name)
  if type(name) ~= "string" or name == "" then fail("rlfr.graph: expected a name, e.g. rlfr.graph \"mlp\"") end
  local g = setmetatable({ name = name, _c = core.graph_new(name), _phase = PHASE_DEFAULT, _nodes = {},
                           _outputs = {}, _compiled = false, _ran = false }, graph_mt)
  last_graph = g
  return g
end

--- g:node("type", opts): the generic form of g:type{opts} (for type names that
--- clash with a graph method).
function Graph:node(tname, opts)
  if type(tname) ~= "string" then fail("g:node: expected a node type name") end
  return new_node(self, tname, opts)
end

--- g:connect(dst, port, src): connects input `port` (name or 1-based index) of
--- node dst to src (a node or node.port). Lets a script wire any edge, cycles
--- included (which compile rejects).
function Graph:connect(dst, port, src)
  if not is_node(dst) or dst._g ~= self then fail("g:connect: the destination must be a node of this graph") end
  connect(self, dst, input_index(dst, port), src)
  rawset(dst, "_applied", true)
  return dst
end

--- g:phase(name, fn): nodes created inside fn run in phase `name`.
function Graph:phase(name, fn)
  if type(name) ~= "string" or name == "" then fail("g:phase: expected a phase name") end
  if type(fn) ~= "function" then fail("g:phase('%s', fn): expected a function", name) end
  local saved = self._phase
  self._phase = name
  local ok, err = pcall(fn)
  self._phase = saved
  if not ok then error(err, 0) end
end

--- g:output(ref): marks a graph output (kept after a run, readable with g:read).
function Graph:output(v)
  local node, port = resolve(self, v, "g:output")
  if self._compiled then fail("g:output: graph '%s' is already compiled; mark outputs before", self.name) end
  core.mark_output(self._c, node._id, port)
  self._outputs[node._id .. ":" .. port] = true
  return v
end

--- g:read(ref) -> flat table of values with .shape and .dtype
function Graph:read(v)
  local node, port = resolve(self, v, "g:read")
  if not self._outputs[node._id .. ":" .. port] then
    fail("g:read: %s output %d is not a graph output (mark it with g:output before compiling)",
         node_desc(node), port)
  end
  if not self._ran then fail("g:read: graph '%s' has not run yet", self.name) end
  return core.read(self._c, node._id, port)
end

--- g:compile{ unplanned = false }
function Graph:compile(o)
  if o ~= nil and type(o) ~= "table" then fail("g:compile: expected a table of options or nothing") end
  o = o or {}
  for k in pairs(o) do
    if k ~= "unplanned" then fail("g:compile: unknown option '%s'%s", tostring(k), did_you_mean(tostring(k), { "unplanned" })) end
  end
  core.compile(self._c, o.unplanned and true or false)
  self._compiled = true
  return self
end

--- g:run(phase_or_nil, step_or_nil): one run of a phase (or all phases).
function Graph:run(phase, step)
  if phase ~= nil and type(phase) ~= "string" then fail("g:run: expected a phase name or nothing") end
  if not self._compiled then self:compile() end
  core.run(self._c, phase, step or 0, 0, args.seed, args.threads, true)
  self._ran = true
end

--- g:metrics() -> {["label.name"] = value} of the last run
function Graph:metrics()
  local _, values = core.metrics(self._c)
  return values
end

--- g:plan() -> {arena_bytes, naive_bytes, lower_bound_bytes, ...}
function Graph:plan()
  if not self._compiled then self:compile() end
  return core.plan(self._c)
end

--- g:print_plan(): the machine-readable line, then the buffer table.
function Graph:print_plan()
  if not self._compiled then self:compile() end
  core.print_plan(self._c)
end

-- ---------------------------------------------------------------- params

--- rlfr.params{ name = "mlp", seed = 1 } -> a parameter set object
function rlfr.params(o)
  if type(o) == "string" then o = { name = o } end
  if type(o) ~= "table" then fail("rlfr.params: expected { name = ..., seed = ... }") end
  for k in pairs(o) do
    if k ~= "name" and k ~= "seed" then
      fail("rlfr.params: unknown option '%s'%s", tostring(k), did_you_mean(tostring(k), { "name", "seed" }))
    end
  end
  if type(o.name) ~= "string" then fail("rlfr.params: 'name' must be a string") end
  local seed = o.seed == nil and args.seed or o.seed
  if math.type(seed) ~= "integer" or seed < 0 then fail("rlfr.params: 'seed' must be a non-negative integer") end
  return core.params(o.name, seed)
end

--- rlfr.params_info(obj) -> {name, numel, tensors, finalized}
function rlfr.params_info(p) return core.params_info(p) end

-- ---------------------------------------------------------------- config

local config_done = false

local function is_list(t)
  local n = #t
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function deep_copy(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = deep_copy(v) end
  return c
end

-- Every settable key, dotted ("flow.coef"), for suggestions.
local function flat_keys(t, prefix, out)
  for k, v in pairs(t) do
    if type(k) == "string" then
      local key = prefix .. k
      if type(v) == "table" and not is_list(v) then
        flat_keys(v, key .. ".", out)
      else
        out[#out + 1] = key
      end
    end
  end
  table.sort(out)
  return out
end

local function parse_bool(s)
  local l = s:lower()
  if l == "true" or l == "1" or l == "yes" or l == "on" then return true end
  if l == "false" or l == "0" or l == "no" or l == "off" then return false end
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- Parses text for a --set against the default's type; nil + expected type on failure.
local function parse_as(default, text)
  local ty = type(default)
  if ty == "boolean" then
    local b = parse_bool(text)
    if b == nil then return nil, "a boolean (true or false)" end
    return b
  elseif ty == "number" then
    local n = tonumber(trim(text))
    if math.type(default) == "integer" then
      n = n and math.tointeger(n)
      if n == nil then return nil, "an integer" end
      return n
    end
    if n == nil then return nil, "a number" end
    return n + 0.0
  elseif ty == "string" then
    return text
  elseif ty == "table" then
    local body = trim(text)
    if body:sub(1, 1) == "{" and body:sub(-1) == "}" then body = body:sub(2, -2) end
    local list = {}
    if trim(body) == "" then return list end
    local elem = default[1]
    for item in (body .. ","):gmatch("([^,]*),") do
      item = trim(item)
      local v
      if type(elem) == "string" then
        v = item:gsub('^"(.*)"$', "%1")
      elseif type(elem) == "number" then
        v = tonumber(item)
        if v == nil then return nil, "a list of numbers (1,2 or {1,2})" end
      else
        v = tonumber(item) or item
      end
      list[#list + 1] = v
    end
    return list
  end
  return nil, ty
end

local function apply_set(cfg, spec, all_keys)
  local key, text = spec:match("^([^=]+)=(.*)$")
  key = trim(key)
  local t = cfg
  local parts = {}
  for part in key:gmatch("[^.]+") do parts[#parts + 1] = part end
  for i, part in ipairs(parts) do
    if type(t) ~= "table" or is_list(t) or t[part] == nil then
      fail("--set %s: unknown option '%s'%s", spec, key, did_you_mean(key, all_keys))
    end
    local v = t[part]
    if i < #parts then
      if type(v) ~= "table" or is_list(v) then
        fail("--set %s: unknown option '%s'%s", spec, key, did_you_mean(key, all_keys))
      end
      t = v
    else
      if type(v) == "table" and not is_list(v) then
        local sub = flat_keys(v, key .. ".", {})
        fail("--set %s: '%s' is a group of options; set one of them (%s)", spec, key, table.concat(sub, ", "))
      end
      local parsed, expected = parse_as(v, text)
      if parsed == nil then
        fail("--set %s: '%s' expects %s, got '%s'", spec, key, expected, text)
      end
      t[part] = parsed
    end
  end
end

--- rlfr.config{ defaults } -> the options, with --set overrides applied
function rlfr.config(defaults)
  if type(defaults) ~= "table" then fail("rlfr.config: expected a table of options with their defaults") end
  if config_done then fail("rlfr.config: called twice (declare every option in one call)") end
  config_done = true
  local cfg = deep_copy(defaults)
  local all_keys = flat_keys(cfg, "", {})
  for _, spec in ipairs(args.set or {}) do apply_set(cfg, spec, all_keys) end
  return cfg
end

-- ---------------------------------------------------------------- metrics.jsonl

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\"
    elseif c == "\n" then return "\\n" elseif c == "\t" then return "\\t"
    else return fmt("\\u%04x", c:byte()) end
  end) .. '"'
end

local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

local function json_value(v)
  local t = type(v)
  if t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if not finite(v) then return "null" end
    -- Shortest of %.15g / %.17g that reads back exactly.
    local s = fmt("%.15g", v)
    if tonumber(s) ~= v then s = fmt("%.17g", v) end
    if not s:find("[.eEn]") then s = s .. ".0" end
    return s
  elseif t == "boolean" then return tostring(v)
  elseif t == "string" then return json_string(v)
  end
  return "null"
end

-- keys: ordered list; rec: key -> value
local function json_line(keys, rec)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = json_string(k) .. ":" .. json_value(rec[k]) end
  return "{" .. table.concat(parts, ",") .. "}\n"
end

-- ---------------------------------------------------------------- training driver

local function human_time(s)
  if s ~= s or s == math.huge then return "?" end
  if s < 60 then return fmt("%.0fs", s) end
  if s < 3600 then return fmt("%dm%02ds", s // 60, math.floor(s % 60)) end
  return fmt("%dh%02dm", s // 3600, math.floor(s % 3600) // 60)
end

local function show_metrics(keys, rec)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = rec[k]
    if type(v) == "number" then parts[#parts + 1] = fmt("%s=%.4g", k, v)
    elseif v ~= nil then parts[#parts + 1] = fmt("%s=%s", k, tostring(v)) end
  end
  return table.concat(parts, "  ")
end

local function check_phases(phases)
  local out = {}
  for i, p in ipairs(phases) do
    if type(p) == "string" then
      out[i] = { p, 1 }
    elseif type(p) == "table" and type(p[1]) == "string" and math.type(p[2]) == "integer" and p[2] >= 1 then
      out[i] = { p[1], p[2] }
    else
      fail("rlfr.train: phases[%d] must be a phase name or {name, times}", i)
    end
  end
  return out
end

local train_keys = { "steps", "phases", "out", "log_every", "eval_every", "eval", "metrics", "unplanned",
                     "checkpoint_every", "resume", "keep" }

-- ---------------------------------------------------------------- checkpoints
-- rlfr.train's checkpoint/resume (docs/checkpoints.md). The C half (dsl/lua_ckpt.c)
-- writes parameter sets, node state and trainer.json into RUN/ckpt-XXXXXXXX/
-- crash-safely; this half decides what the trainer state is.

-- Keeps the first `n` lines of the run's metrics.jsonl (the steps a checkpoint
-- covers), replacing the file by rename so a kill during resume loses nothing.
local function truncate_metrics(path, n)
  local f = io.open(path, "rb")
  if not f then
    if n == 0 then return end
    fail("rlfr.train: resume: %s is missing (the checkpoint covers %d steps)", path, n)
  end
  local lines = {}
  for line in f:lines("L") do
    if #lines == n then break end
    if line:sub(-1) ~= "\n" then break end -- a torn last line is not a step
    lines[#lines + 1] = line
  end
  f:close()
  if #lines < n then
    fail("rlfr.train: resume: %s has %d complete lines, the checkpoint covers %d steps", path, #lines, n)
  end
  local tmp = path .. ".tmp"
  local w, err = io.open(tmp, "wb")
  if not w then fail("rlfr.train: cannot write %s: %s", tmp, err) end
  w:write(table.concat(lines))
  w:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then fail("rlfr.train: cannot replace %s: %s", path, rerr) end
end


-- A metric that is NaN or infinite stops the run, naming the node that wrote it.
local function bad_metric(g, key, node_label, v, step)
  local id = node_label and core.find(g._c, node_label)
  local what = v ~= v and "NaN" or (v > 0 and "+inf" or "-inf")
  if id then
    local label, where, tname = core.node_info(g._c, id)
    fail("%s: node '%s' (%s): metric '%s' is %s at step %d", where, label, tname, key, what, step)
  end
  fail("metric '%s' is %s at step %d", key, what, step)
end

--- rlfr.train(g, { steps = N, phases = ..., out = dir, ... }) -> summary
function rlfr.train(g, o)
  if not is_graph(g) then fail("rlfr.train: first argument must be a graph (rlfr.graph)") end
  if type(o) ~= "table" then fail("rlfr.train: expected rlfr.train(g, { steps = N, ... })") end
  for k in pairs(o) do
    if type(k) ~= "string" then fail("rlfr.train: options must be name = value") end
    local known = false
    for _, t in ipairs(train_keys) do known = known or t == k end
    if not known then fail("rlfr.train: unknown option '%s'%s", k, did_you_mean(k, train_keys)) end
  end
  local steps = o.steps
  if math.type(steps) ~= "integer" or steps < 0 then fail("rlfr.train: 'steps' must be a non-negative integer") end
  local phases = o.phases and check_phases(o.phases) or nil
  local log_every = o.log_every or 1
  if math.type(log_every) ~= "integer" or log_every < 1 then fail("rlfr.train: 'log_every' must be a positive integer") end
  local eval_every = o.eval_every
  if eval_every ~= nil and (math.type(eval_every) ~= "integer" or eval_every < 1) then
    fail("rlfr.train: 'eval_every' must be a positive integer")
  end
  if o.eval ~= nil and type(o.eval) ~= "function" then fail("rlfr.train: 'eval' must be a function(step)") end
  if o.metrics ~= nil and type(o.metrics) ~= "table" then fail("rlfr.train: 'metrics' must be a list of metric names") end
  if o.out ~= nil and type(o.out) ~= "string" then fail("rlfr.train: 'out' must be a directory name") end
  local ckpt_every = o.checkpoint_every
  if ckpt_every ~= nil and (math.type(ckpt_every) ~= "integer" or ckpt_every < 1) then
    fail("rlfr.train: 'checkpoint_every' must be a positive integer")
  end
  if o.resume ~= nil and type(o.resume) ~= "boolean" then fail("rlfr.train: 'resume' must be a boolean") end
  local keep = o.keep or 2
  if math.type(keep) ~= "integer" or keep < 1 then fail("rlfr.train: 'keep' must be a positive integer") end

  g:compile { unplanned = o.unplanned }
  trained = true
  if args.mode == "plan" then
    core.print_plan(g._c)
    error({ rlfr_stop = true }, 0) -- done: the rest of the script is training
  end

  local out = args.out or o.out or ("runs/" .. g.name)
  local ok, err = core.mkdir_p(out)
  if not ok then fail("rlfr.train: %s", err) end
  local path = out .. "/metrics.jsonl"

  -- Resume from the newest complete checkpoint of `out`, unless told not to.
  -- `first`/`last` are {keys = ordered names, values = {name = value}}.
  local start, wall0, first, last = 0, 0.0, nil, nil
  local ck_dir = nil
  if o.resume ~= false then ck_dir = rlfr._ckpt_latest(out) end
  if ck_dir then
    local tr = rlfr._ckpt_load(g._c, ck_dir)
    if tr.graph ~= g.name then
      fail("rlfr.train: resume: %s was made by graph '%s', not '%s' (use another out, or resume = false)",
           ck_dir, tostring(tr.graph), g.name)
    end
    if tr.seed ~= args.seed then
      fail("rlfr.train: resume: %s was made with --seed %s, this run has --seed %d (resume = false starts over)",
           ck_dir, tostring(tr.seed), args.seed)
    end
    if math.type(tr.step) ~= "integer" or tr.step < 0 then
      fail("rlfr.train: resume: %s/trainer.json: bad step", ck_dir)
    end
    start, wall0, first, last = tr.step, tonumber(tr.wall) or 0.0, tr.first, tr.last
    truncate_metrics(path, start)
    io.stderr:write(fmt("rlfr.train: resuming '%s' from %s (step %d of %d)\n", g.name, ck_dir, start, steps))
  elseif ckpt_every or o.resume == false then
    -- A fresh run must never later resume from (or prune against) an older
    -- run's checkpoints left in the same directory.
    rlfr._ckpt_clear(out)
  end
  local file, ferr = io.open(path, start > 0 and "ab" or "wb")
  if not file then fail("rlfr.train: cannot write %s: %s", path, ferr) end
  file:setvbuf("line") -- every finished step is on disk, even if the run dies later

  local function record_json(r)
    if not r then return "null" end
    local k = {}
    for i, key in ipairs(r.keys) do k[i] = json_string(key) end
    return "{\"keys\":[" .. table.concat(k, ",") .. "],\"values\":" .. json_line(r.keys, r.values):sub(1, -2) .. "}"
  end
  local function save_checkpoint(step, wall)
    local keys = { "step", "seed", "graph", "steps", "threads", "wall", "first", "last" }
    local rec = { step = step, seed = args.seed, graph = g.name, steps = steps, threads = args.threads, wall = wall }
    local parts = {}
    for i, k in ipairs(keys) do
      local v = (k == "first" or k == "last") and record_json(k == "first" and first or last) or json_value(rec[k])
      parts[i] = json_string(k) .. ":" .. v
    end
    rlfr._ckpt_save(g._c, out, step, keep, "{" .. table.concat(parts, ",") .. "}\n")
  end

  local tty = core.isatty(1)
  local t0 = core.clock()
  local last_draw = -1
  local kill_at = rlfr._ckpt_kill_step() -- test hook (tests/test_resume.sh)
  for step = start + 1, steps do
    local reset = true
    if phases then
      for _, p in ipairs(phases) do
        for r = 0, p[2] - 1 do
          core.run(g._c, p[1], step - 1, r, args.seed, args.threads, reset)
          reset = false
        end
      end
    else
      core.run(g._c, nil, step - 1, 0, args.seed, args.threads, true)
    end
    g._ran = true
    local keys, values, nodes = core.metrics(g._c)
    -- `wall` (and any key starting with "time") is wall-clock: the only
    -- fields that differ between a resumed run and an uninterrupted one.
    local rec_keys = { "step", "wall" }
    local rec = { step = step, wall = wall0 + core.clock() - t0 }
    local bad
    for _, k in ipairs(keys) do
      rec_keys[#rec_keys + 1] = k
      rec[k] = values[k]
      if not bad and not finite(values[k]) then bad = k end
    end
    if o.eval and ((eval_every and step % eval_every == 0) or step == steps) then
      local em = o.eval(step)
      if em ~= nil and type(em) ~= "table" then fail("rlfr.train: eval(step) must return a table of metrics") end
      -- Sorted, so the line is the same in every run (pairs order is not).
      local ek = {}
      for k in pairs(em or {}) do ek[#ek + 1] = k end
      table.sort(ek)
      for _, k in ipairs(ek) do
        local v = em[k]
        if rec[k] == nil then rec_keys[#rec_keys + 1] = k end
        rec[k] = v
        if not bad and type(v) == "number" and not finite(v) then bad = k end
      end
    end
    file:write(json_line(rec_keys, rec))
    if bad then
      file:close()
      if tty then io.stdout:write("\n") end
      bad_metric(g, bad, nodes[bad], rec[bad], step)
    end
    last = { keys = rec_keys, values = rec }
    first = first or last
    -- After the step's metrics line, so a checkpoint never covers a step the
    -- metrics file lacks.
    if ckpt_every and (step % ckpt_every == 0 or step == steps) then save_checkpoint(step, rec.wall) end
    if step == kill_at then rlfr._ckpt_kill() end

    local show = o.metrics
    if not show then
      show = {}
      for i = 3, math.min(#rec_keys, 5) do show[#show + 1] = rec_keys[i] end
    end
    local elapsed = core.clock() - t0
    local rate = (step - start) / math.max(elapsed, 1e-9)
    local eta = (steps - step) / rate
    if tty then
      if elapsed - last_draw >= 0.1 or step == steps then
        last_draw = elapsed
        local width = 20
        local filled = steps > 0 and math.floor(width * step / steps) or width
        io.stdout:write(fmt("\r[%s%s] %d/%d  %.1f steps/s  eta %s  %s\27[K",
          string.rep("#", filled), string.rep(".", width - filled), step, steps, rate,
          human_time(eta), show_metrics(show, rec)))
        io.stdout:flush()
      end
    elseif step % log_every == 0 or step == steps then
      io.stdout:write(fmt("step %d/%d  %.1f steps/s  eta %s  %s\n", step, steps, rate, human_time(eta),
        show_metrics(show, rec)))
      io.stdout:flush()
    end
  end
  if tty and steps > start then io.stdout:write("\n") end
  file:close()
  return {
    steps = steps, seconds = core.clock() - t0, out = out, metrics_file = path,
    first = first and first.values or {}, last = last and last.values or {},
    resumed_from = start > 0 and start or nil,
  }
end

-- In plan mode stdout carries only the plan (its first line is machine-read),
-- so the script's own prints go to stderr.
if args.mode == "plan" then
  local tostring, select, concat, stderr = tostring, select, table.concat, io.stderr
  print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    stderr:write(concat(parts, "\t"), "\n")
  end
end

-- ---------------------------------------------------------------- end of script

-- Called by the CLI after the script returns.
function rlfr._finish()
  if #(args.set or {}) > 0 and not config_done then
    fail("%s: --set given, but the script declares no options (rlfr.config)", args.script)
  end
  if args.mode == "plan" and not trained then
    if not last_graph then fail("%s: plan: the script built no graph", args.script) end
    last_graph:compile()
    core.print_plan(last_graph._c)
  end
end

-- Binding modules (dsl/modules.c) add their functions to rlfr.
for _, name in ipairs(core.modules) do
  if name ~= "core" then
    local m = require("rlfr." .. name)
    if type(m) == "table" then
      for k, v in pairs(m) do
        if rlfr[k] == nil then rlfr[k] = v end
      end
    end
  end
end

return rlfr
