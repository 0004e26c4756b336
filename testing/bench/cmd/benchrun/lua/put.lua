-- wrk script: PUT a new name with a new 10 KiB-ish body on every request
-- (Pier names are immutable, and distinct bodies avoid content dedup).
-- args: <path prefix> <body size> [query]; names are <prefix><thread>-<n>,
-- and query (e.g. "?fsync=true"), when given, follows each name.
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
  size = tonumber(args[2])
  query = args[3] or ""
  n = 0
  non2xx = 0
  firstbad = 0
end

function request()
  n = n + 1
  local name = prefix .. tid .. "-" .. n
  -- The unique name repeated to the body size: every body, and every
  -- piece of it longer than the name, differs from the others.
  local unit = name .. "\n"
  local body = string.rep(unit, math.ceil(size / #unit)):sub(1, size)
  return wrk.format("PUT", name .. query, nil, body)
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
