-- wrk script for scripts/bench-api: one request shape per run, from the environment, and a
-- machine-readable closing line (req/s, percentiles, failures) for the script's table.
--   BENCH_METHOD   GET (default) or POST
--   BENCH_BODY     file whose content is the POST body
--   BENCH_TYPE     the POST body's Content-Type (default application/geo+json)
--   BENCH_TOKEN    bearer token, sent when set

local method = os.getenv("BENCH_METHOD") or "GET"
wrk.method = method

local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

if method == "POST" then
  local path = assert(os.getenv("BENCH_BODY"), "BENCH_BODY must name the body file")
  local file = assert(io.open(path, "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.headers["Content-Type"] = os.getenv("BENCH_TYPE") or "application/geo+json"
end

-- wrk counts only statuses >= 400 as errors; a 3xx or a 200 where a 202 is due would pass
-- unnoticed, so every response's status is tallied per thread and summed in done().
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  unexpected = 0
  expected = tonumber(os.getenv("BENCH_EXPECT") or "200")
end

function response(status, headers, body)
  if status ~= expected then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, requests)
  local unexpected_total = 0
  for _, thread in ipairs(threads) do
    unexpected_total = unexpected_total + (thread:get("unexpected") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d seconds=%.3f rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f unexpected_status=%d socket_errors=%d\n",
    summary.requests,
    summary.duration / 1e6,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3,
    latency.max / 1e3,
    unexpected_total,
    e.connect + e.read + e.write + e.timeout
  ))
end
