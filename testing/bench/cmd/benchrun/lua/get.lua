-- wrk script: GET random names out of a seeded set.
-- args: <path prefix> <count>; requests go to <prefix><i>, 0 <= i < count.
-- Counts non-2xx answers per thread and prints a BENCH line in done().

local threads = {}
local nextid = 1

function setup(thread)
  thread:set("tid", nextid)
  nextid = nextid + 1
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1]
  count = tonumber(args[2])
  non2xx = 0
  firstbad = 0
  math.randomseed(os.time() * 1000 + tid * 7919)
end

function request()
  return wrk.format("GET", prefix .. math.random(0, count - 1))
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if firstbad == 0 then firstbad = status end
  end
end

function done(summary, latency, requests)
  local bad, first = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
    local f = t:get("firstbad") or 0
    if first == 0 then first = f end
  end
  io.write(string.format("BENCH non2xx=%d firstbad=%d requests=%d p50us=%d p99us=%d\n",
    bad, first, summary.requests, latency:percentile(50), latency:percentile(99)))
end
