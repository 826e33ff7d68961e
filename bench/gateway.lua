-- wrk script for bench/gateway.py: POST /v1/feedback as many contributors, each request a
-- fresh event id (so every 2xx must appear exactly once in the store), counting statuses.
-- Reads TOKENS_FILE (one "contributor_id token" per line) and RUN_ID from the environment.

local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  local id, token = line:match("^(%S+) (%S+)$")
  tokens[#tokens + 1] = { id = id, header = "Bearer " .. token }
end
local run_id = os.getenv("RUN_ID")
local threads = {}
local thread_number = 0

function setup(thread)
  thread_number = thread_number + 1
  thread:set("number", thread_number)
  threads[#threads + 1] = thread
end

function init(args)
  sent, statuses, next_token = 0, {}, number
end

function request()
  sent = sent + 1
  local who = tokens[(next_token % #tokens) + 1]
  next_token = next_token + 7
  local body = string.format(
    '{"campaign_id":"bench","prompt":"write a reddit comment.","response":"gateway bench %s %d %d: the crowd writes and the model listens","event_id":"%s-%d-%d"}',
    run_id, number, sent, run_id, number, sent)
  return wrk.format("POST", "/v1/feedback", {
    ["Authorization"] = who.header, ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[tostring(status)] = (counts[tostring(status)] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do parts[#parts + 1] = string.format('"%s":%d', status, n) end
  io.write(string.format(
    'WRK_JSON {"requests":%d,"seconds":%.3f,"socket_errors":%d,"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f,"statuses":{%s}}\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, table.concat(parts, ",")))
end
