#include "tools/engram/serve_config.h"

#include <fmt/format.h>

#include <boost/asio/ip/address.hpp>
#include <nlohmann/json.hpp>

#include "core/executor.h"
#include "core/files.h"
#include "core/json.h"

namespace engram::cli {
namespace {

using nlohmann::json;

constexpr size_t kMaxConfigFileBytes = 1 << 20;
// A config is an object of settings and groups of settings ("feed": {...}).
constexpr size_t kMaxConfigDepth = 2;

core::Error bad(std::string message) {
  return core::make_error(core::errc::invalid_argument, std::move(message));
}

// Reads an integer setting within [min, max].
core::result<void> get_uint(const json& j, const std::string& key, uint64_t min, uint64_t max,
                            uint64_t& out) {
  if (!j.is_number_unsigned() || j.get<uint64_t>() < min || j.get<uint64_t>() > max) {
    return bad(fmt::format("config: '{}' must be an integer in {}..{}", key, min, max));
  }
  out = j.get<uint64_t>();
  return {};
}

core::result<void> get_rate(const json& j, const std::string& key, double& out) {
  if (!j.is_number() || j.get<double>() < 0 || j.get<double>() > 1e9) {
    return bad(fmt::format("config: '{}' must be a number in 0..1e9 (0 = unlimited)", key));
  }
  out = j.get<double>();
  return {};
}

}  // namespace

core::result<void> apply_config_file(const std::filesystem::path& path, ServeConfig& config) {
  auto text = core::read_file(path, kMaxConfigFileBytes);
  if (!text) {
    return bad(
        fmt::format("cannot read config file '{}': {}", path.string(), text.error().message));
  }
  auto parsed = core::parse_json_object(*text, kMaxConfigDepth);
  if (!parsed)
    return bad(fmt::format("config file '{}': {}", path.string(), parsed.error().message));
  const json& j = *parsed;

  ServeConfig c = config;  // applied only when every key is good
  auto size = [](const json& v, const std::string& k, uint64_t min, uint64_t max,
                 size_t& out) -> core::result<void> {
    uint64_t u = 0;
    if (auto r = get_uint(v, k, min, max, u); !r) return r;
    out = static_cast<size_t>(u);
    return {};
  };
  for (const auto& [k, v] : j.items()) {
    core::result<void> r;
    if (k == "data") {
      if (!v.is_string()) return bad("config: 'data' must be a string");
      c.data_dir = v.get<std::string>();
    } else if (k == "listen") {
      if (!v.is_string()) return bad("config: 'listen' must be a string");
      c.listen = v.get<std::string>();
    } else if (k == "io_threads") {
      r = size(v, k, 1, 256, c.server.io_threads);
    } else if (k == "max_connections") {
      r = size(v, k, 1, 1'000'000, c.server.max_connections);
    } else if (k == "max_body_bytes") {
      r = size(v, k, 1024, 64 << 20, c.server.max_body_bytes);
    } else if (k == "max_header_bytes") {
      r = size(v, k, 1024, 1 << 20, c.server.max_header_bytes);
    } else if (k == "read_timeout_ms") {
      r = get_uint(v, k, 10, 3'600'000, c.server.read_timeout_ms);
    } else if (k == "write_timeout_ms") {
      r = get_uint(v, k, 10, 3'600'000, c.server.write_timeout_ms);
    } else if (k == "shutdown_grace_ms") {
      r = get_uint(v, k, 0, 600'000, c.server.shutdown_grace_ms);
    } else if (k == "max_events_per_request") {
      r = size(v, k, 1, 1000, c.api.max_events_per_request);
    } else if (k == "max_wait_ms") {
      r = get_uint(v, k, 0, 60'000, c.api.max_wait_ms);
    } else if (k == "max_page_size") {
      r = size(v, k, 1, 10'000, c.api.max_page_size);
    } else if (k == "state_cache_entries") {
      r = size(v, k, 1, 100'000'000, c.bus.state_cache_entries);
    } else if (k == "state_cache_bytes") {
      r = size(v, k, 1 << 20, uint64_t{64} << 30, c.bus.state_cache_bytes);
    } else if (k == "bus") {
      if (!v.is_object()) return bad("config: 'bus' must be an object");
      for (const auto& [bk, bv] : v.items()) {
        const std::string key = "bus." + bk;
        if (bk == "threads") {
          r = size(bv, key, 1, core::ThreadPool::kMaxThreads, c.bus.threads);
        } else if (bk == "max_queued_commands") {
          r = size(bv, key, 1, 1'000'000, c.bus.max_queued_commands);
        } else {
          return bad(fmt::format("config: unknown key '{}'", key));
        }
        if (!r) return r;
      }
    } else if (k == "access_log") {
      if (!v.is_boolean()) return bad("config: 'access_log' must be true or false");
      c.api.access_log = v.get<bool>();
    } else if (k == "log_level") {
      if (!v.is_string()) return bad("config: 'log_level' must be a string");
      c.log_level = v.get<std::string>();
    } else if (k == "rate_limits") {
      if (!v.is_object()) return bad("config: 'rate_limits' must be an object");
      for (const auto& [rk, rv] : v.items()) {
        const std::string key = "rate_limits." + rk;
        if (rk == "per_token_rps") {
          r = get_rate(rv, key, c.api.per_token_rps);
        } else if (rk == "per_token_burst") {
          r = get_rate(rv, key, c.api.per_token_burst);
        } else if (rk == "per_ip_rps") {
          r = get_rate(rv, key, c.api.per_ip_rps);
        } else if (rk == "per_ip_burst") {
          r = get_rate(rv, key, c.api.per_ip_burst);
        } else if (rk == "max_clients") {
          r = size(rv, key, 1, 10'000'000, c.api.rate_limit_max_clients);
        } else {
          return bad(fmt::format("config: unknown key '{}'", key));
        }
        if (!r) return r;
      }
    } else if (k == "feed") {
      if (!v.is_object()) return bad("config: 'feed' must be an object");
      for (const auto& [fk, fv] : v.items()) {
        const std::string key = "feed." + fk;
        if (fk == "heartbeat_ms") {
          r = get_uint(fv, key, 10, 3'600'000, c.api.feed.heartbeat_ms);
        } else if (fk == "max_lag_events") {
          r = get_uint(fv, key, 1, 1'000'000'000, c.api.feed.max_lag_events);
        } else if (fk == "max_subscribers") {
          r = size(fv, key, 1, 100'000, c.api.feed.max_subscribers);
        } else if (fk == "max_chunk_events") {
          r = size(fv, key, 1, 10'000, c.api.feed.max_chunk_events);
        } else if (fk == "max_chunk_bytes") {
          r = size(fv, key, 1024, 64 << 20, c.api.feed.max_chunk_bytes);
        } else {
          return bad(fmt::format("config: unknown key '{}'", key));
        }
        if (!r) return r;
      }
    } else if (k == "queries") {
      if (!v.is_object()) return bad("config: 'queries' must be an object");
      for (const auto& [qk, qv] : v.items()) {
        const std::string key = "queries." + qk;
        if (qk == "threads") {
          r = size(qv, key, 1, core::ThreadPool::kMaxThreads, c.api.queries.threads);
        } else if (qk == "max_queued") {
          r = size(qv, key, 1, 1'000'000, c.api.queries.max_queued);
        } else {
          return bad(fmt::format("config: unknown key '{}'", key));
        }
        if (!r) return r;
      }
    } else if (k == "audit") {
      if (!v.is_object()) return bad("config: 'audit' must be an object");
      for (const auto& [ak, av] : v.items()) {
        const std::string key = "audit." + ak;
        if (ak == "checkpoint_every_events") {
          r = get_uint(av, key, 1, 1'000'000'000, c.checkpoints.every_events);
        } else if (ak == "checkpoint_interval_ms") {
          r = get_uint(av, key, 100, 86'400'000, c.checkpoints.interval_ms);
        } else if (ak == "max_verify_events") {
          r = get_uint(av, key, 1, 1'000'000'000, c.api.max_audit_verify_events);
        } else if (ak == "signing_key_file" && av.is_string()) {
          c.signing_key_file = av.get<std::string>();
        } else {
          return bad(fmt::format("config: '{}' is unknown or has the wrong type", key));
        }
        if (!r) return r;
      }
    } else if (k == "auth") {
      if (!v.is_object()) return bad("config: 'auth' must be an object");
      for (const auto& [ak, av] : v.items()) {
        if (ak == "enabled" && av.is_boolean()) {
          c.auth_enabled = av.get<bool>();
        } else if (ak == "keys_file" && av.is_string()) {
          c.keys_file = av.get<std::string>();
        } else {
          return bad(fmt::format("config: 'auth.{}' is unknown or has the wrong type", ak));
        }
      }
    } else {
      return bad(fmt::format("config: unknown key '{}'", k));
    }
    if (!r) return r;
  }
  config = std::move(c);
  return {};
}

core::result<void> apply_listen(ServeConfig& config) {
  const std::string& l = config.listen;
  const size_t colon = l.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return bad(fmt::format("--listen '{}' must be ADDR:PORT", l));
  }
  std::string addr = l.substr(0, colon);
  if (addr.size() > 2 && addr.front() == '[' && addr.back() == ']') {
    addr = addr.substr(1, addr.size() - 2);
  }
  const std::string port_text = l.substr(colon + 1);
  uint64_t port = 0;
  try {
    size_t used = 0;
    port = std::stoull(port_text, &used);
    if (used != port_text.size()) port = 70000;
  } catch (...) {
    port = 70000;
  }
  if (port > 65535) return bad(fmt::format("--listen '{}': the port must be 0..65535", l));
  boost::system::error_code ec;
  (void)boost::asio::ip::make_address(addr, ec);
  if (ec) return bad(fmt::format("--listen '{}': '{}' is not an IP address", l, addr));
  config.server.listen_address = addr;
  config.server.port = static_cast<uint16_t>(port);
  return {};
}

core::result<void> check_config(const ServeConfig& config) {
  boost::system::error_code ec;
  const auto addr = boost::asio::ip::make_address(config.server.listen_address, ec);
  if (!config.auth_enabled && (ec || !addr.is_loopback())) {
    return bad("authentication can be turned off only on a loopback listener (127.0.0.1, ::1)");
  }
  if (config.log_level != "debug" && config.log_level != "info" && config.log_level != "warn" &&
      config.log_level != "error" && config.log_level != "off") {
    return bad("log_level must be debug, info, warn, error or off");
  }
  return {};
}

}  // namespace engram::cli
