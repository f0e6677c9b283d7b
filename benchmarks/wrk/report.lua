-- Shared by the scenarios: thread numbering, seeded ids, unique contacts, and the
-- one line of JSON the benchmark reads back from wrk.

local threads = {}
local counter = 0
ids = {}

function setup(thread)
  thread:set("thread_number", #threads)
  table.insert(threads, thread)
end

-- args: the file of seeded user ids, then a number unique to this run (contacts
-- made from it never meet those of another run or of the seeding).
function init(args)
  for line in io.lines(args[1]) do
    ids[#ids + 1] = line
  end
  base = tonumber(args[2])
  math.randomseed(base + thread_number)
end

-- A new number each call, unique across the threads and runs of one benchmark.
function unique()
  counter = counter + 1
  return base + counter * 16 + thread_number
end

function random_id()
  return ids[math.random(#ids)]
end

json_headers = { ["Content-Type"] = "application/json" }

-- The bearer token of a service that checks them (benchmarks/issuer.py), on every request.
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
  json_headers["Authorization"] = authorization
end

function create_body(k)
  return string.format(
    '{"phone": %d, "email": "load%d@example.com", "firstname": "Ivan", ' ..
    '"lastname": "Petrov", "middlename": null}', 79000000000 + k, k)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
