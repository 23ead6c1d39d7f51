-- wrk script for bench/http's mixed run: one owner's memories, stored or
-- searched.
--
--   wrk ... -s bench/http/memory.lua URL -- TOKEN MODE OWNER
--
-- MODE "store": POST /v1/commands/StoreMemory with a unique memory_id per
-- request ("m-<nonce>-<thread>-<counter>", ENGRAM_BENCH_NONCE as in
-- register_agent.lua) and content drawn from a small vocabulary, so the
-- memories embed to different vectors.
-- MODE "search": POST /v1/memories/search over OWNER's memories with a
-- text query drawn from the same vocabulary, k = 10.
--
-- The token must be allowed to store and search OWNER's memories (an agent
-- token scoped to OWNER). No response() callback, as in register_agent.lua.

local next_thread_id = 1
local run_nonce = nil

function setup(thread)
  if run_nonce == nil then
    local env = os.getenv("ENGRAM_BENCH_NONCE")
    run_nonce = (env and env ~= "") and env or string.format("%x", os.time())
  end
  thread:set("thread_id", next_thread_id)
  thread:set("nonce", run_nonce)
  next_thread_id = next_thread_id + 1
end

local words = {
  "tea", "coffee", "protein", "folding", "soil", "microbes", "transformer", "attention",
  "garden", "river", "graph", "index", "memory", "search", "vector", "cluster",
  "green", "blue", "morning", "evening", "paper", "review", "budget", "travel",
}

local counter = 0
local headers = nil
local mode = nil
local owner = nil

local function phrase(n)
  local out = {}
  for i = 1, n do
    out[i] = words[math.random(#words)]
  end
  return table.concat(out, " ")
end

function init(args)
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[1] }
  mode = args[2]
  owner = args[3]
  math.randomseed(os.time() + (thread_id or 0))
  if mode ~= "store" and mode ~= "search" then
    error("memory.lua: MODE must be store or search, not " .. tostring(mode))
  end
end

function request()
  counter = counter + 1
  if mode == "store" then
    local body = string.format(
      '{"owner":"%s","memory_id":"m-%s-%d-%d","content":"%s","importance":0.5}',
      owner, nonce or "x", thread_id or 0, counter, phrase(8))
    return wrk.format("POST", "/v1/commands/StoreMemory", headers, body)
  end
  local body = string.format('{"owner":"%s","text":"%s","k":10}', owner, phrase(3))
  return wrk.format("POST", "/v1/memories/search", headers, body)
end

-- done(): bench/http/done.lua, next to this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "done.lua")
