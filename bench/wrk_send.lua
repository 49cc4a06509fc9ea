-- Signed one-number sends for bench/pipeline_e2e.py --load wrk.
--
--   wrk -t2 -c50 -d15s --latency -s bench/wrk_send.lua http://127.0.0.1:PORT -- PREFIX APP_ID [keyed]
--
-- PREFIX .. N .. ".tsv" holds thread N's requests (N from 0), signed beforehand, one a
-- line: timestamp, nonce, signature and JSON body separated by tabs. Each thread reads
-- only its own file, so no nonce is sent twice (the API refuses a reused one). A thread
-- that has sent all of its requests stops, and the requests its connections still ask
-- for in that last turn of its loop are GET /healthz (no nonce: never refused); done()
-- reports how many threads ran out ("ran_out"), in which case the run was too short of
-- requests and its rate is an underestimate.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local requests = {}
sent = 0
ran_out = false

function init(args)
  -- args[0] is the URL; the arguments after "--" follow.
  for line in io.lines(args[1] .. id .. ".tsv") do
    local ts, nonce, signature, body = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t(.+)$")
    local headers = {
      ["Content-Type"] = "application/json", ["X-SMS-AppId"] = args[2],
      ["X-SMS-Timestamp"] = ts, ["X-SMS-Nonce"] = nonce, ["X-SMS-Signature"] = signature,
    }
    if args[3] == "keyed" then  -- each request its own Idempotency-Key
      headers["Idempotency-Key"] = nonce
    end
    requests[#requests + 1] = wrk.format("POST", "/api/v1/sms/send", headers, body)
  end
end

function request()
  sent = sent + 1
  local r = requests[sent]
  if r then
    return r
  end
  if not ran_out then
    ran_out = true
    wrk.thread:stop()
  end
  return wrk.format("GET", "/healthz")
end

-- One line for bench/pipeline_e2e.py to parse: durations in microseconds.
function done(summary, latency, _)
  local ran_out_threads = 0
  for _, thread in ipairs(threads) do
    if thread:get("ran_out") then
      ran_out_threads = ran_out_threads + 1
    end
  end
  local e = summary.errors
  io.write(string.format(
    "wrk-summary requests=%d duration_us=%d p50_us=%d status=%d connect=%d read=%d "
      .. "write=%d timeout=%d ran_out=%d\n",
    summary.requests, summary.duration, latency:percentile(50), e.status, e.connect,
    e.read, e.write, e.timeout, ran_out_threads))
end
