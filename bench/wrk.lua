-- wrk script for the Airlock benchmark.
-- Environment:
--   BENCH_PATHS     file with one request path per line (requests cycle through them)
--   BENCH_ACCEPT    Accept header (unset: none)
--   BENCH_ENCODING  Accept-Encoding header (unset: none, i.e. identity)
--   BENCH_INM       If-None-Match header (unset: none)
-- done() prints one machine-readable line starting with WRKJSON.

local function env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

local accept = env("BENCH_ACCEPT")
local encoding = env("BENCH_ENCODING")
local inm = env("BENCH_INM")
if accept then wrk.headers["Accept"] = accept end
if encoding then wrk.headers["Accept-Encoding"] = encoding end
if inm then wrk.headers["If-None-Match"] = inm end

local requests = {}
local cursor = 0

function init(args)
  local file = env("BENCH_PATHS")
  if file then
    for line in io.lines(file) do
      if line ~= "" then requests[#requests + 1] = wrk.format("GET", line) end
    end
  end
  if #requests == 0 then requests[1] = wrk.format("GET", wrk.path) end
  -- Threads start at different offsets so they do not walk the list in lockstep.
  cursor = math.random(#requests) - 1
end

function request()
  cursor = cursor % #requests + 1
  return requests[cursor]
end

function done(summary, latency, reqs)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"bytes":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
