-- wrk script for bench/http: one single-event command per request,
-- POST /v1/commands/RegisterAgent with a unique agent_id every time.
--
--   wrk -t2 -c64 -d10s --latency -s bench/http/register_agent.lua http://127.0.0.1:PORT -- [TOKEN]
--
-- The bearer token comes from the first script argument (after `--`) or,
-- failing that, from the environment variable ENGRAM_TOKEN; with neither,
-- no Authorization header is sent (for `engram serve --no-auth` and the
-- bare server).
--
-- agent_id = "bench-<nonce>-<thread>-<counter>": the nonce is per run
-- (ENGRAM_BENCH_NONCE, else time + random), the thread number is given to
-- each wrk thread in setup(), the counter is per thread. Reruns against the
-- same data directory therefore never register an existing agent.
--
-- No response() callback on purpose: with one, wrk parses every response
-- body in Lua, which costs client CPU on the same cores as the server.
-- Failed requests show up in wrk's own "Non-2xx or 3xx responses" line,
-- which bench/http/run checks.

local threads = {}
local next_thread_id = 1
local run_nonce = nil

local function make_nonce()
  local env = os.getenv("ENGRAM_BENCH_NONCE")
  if env and env ~= "" then return env end
  math.randomseed(os.time())
  return string.format("%x%04x", os.time(), math.random(0, 0xffff))
end

-- Runs in the main Lua state, once per thread, before the threads start.
function setup(thread)
  if run_nonce == nil then run_nonce = make_nonce() end
  thread:set("thread_id", next_thread_id)
  thread:set("nonce", run_nonce)
  next_thread_id = next_thread_id + 1
  table.insert(threads, thread)
end

-- From here on, each function runs in a thread's own Lua state.
local counter = 0
local prefix = nil
local headers = nil

function init(args)
  local token = args[1]
  if token == nil or token == "" then token = os.getenv("ENGRAM_TOKEN") end
  headers = { ["Content-Type"] = "application/json" }
  if token ~= nil and token ~= "" then headers["Authorization"] = "Bearer " .. token end
  -- thread_id and nonce were set by setup(); default for a single-state run.
  prefix = string.format('{"agent_id":"bench-%s-%d-', nonce or "x", thread_id or 0)
end

function request()
  counter = counter + 1
  local body = prefix .. counter ..
    '","name":"Bench agent","capabilities":["search"],"domains":["biology"]}'
  return wrk.format("POST", "/v1/commands/RegisterAgent", headers, body)
end

-- done(): bench/http/done.lua, next to this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "done.lua")
