-- wrk script of TestWrk (wrk_test.go): POSTs {"text": ...} to /api/echo
-- and checks every answer. wrk runs response() in each thread's own Lua
-- state, and setup() and done() in the main one: done() collects the
-- threads' counts with thread:get.
wrk.method = "POST"
wrk.body = '{"text":"hello from wrk"}'
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  wrong = 0 -- a global of the thread's state, for thread:get
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"echo":"hello from wrk"', 1, true) then
    wrong = wrong + 1
  end
end

function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do
    n = n + t:get("wrong")
  end
  local e = summary.errors
  io.write(string.format("requests=%d wrong=%d status=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, n, e.status, e.connect, e.read, e.write, e.timeout))
end
