-- The done() of bench/http's wrk scripts: one machine-readable line with
-- the exact percentiles (wrk's own table rounds to two decimals), which
-- bench/http/run reads. Loaded by the scripts next to it.
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "engram-bench: requests=%d duration_us=%d non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.requests, summary.duration, errors.status, errors.connect, errors.read, errors.write,
    errors.timeout, latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
