// engram token: bearer tokens for the HTTP API (docs/auth.md).

#include <fmt/format.h>

#include <charconv>
#include <filesystem>
#include <optional>

#include "adapters/auth/jwt.h"
#include "core/clock.h"
#include "tools/engram/cli.h"
#include "tools/engram/commands.h"

namespace engram::cli {
namespace {

constexpr int64_t kMaxTtl_s = 365LL * 24 * 3600;

struct IssueOptions {
  std::string data_dir;
  std::string keys_file;
  std::vector<std::string> roles;
  std::string subject;
  std::string ttl = "1h";
  std::string agent;
  std::string kid;
  std::string audience;
  std::string issuer;
};

// "30s", "15m", "1h", "7d" → seconds; nullopt for anything else or beyond kMaxTtl_s.
std::optional<int64_t> parse_ttl_s(std::string_view text) {
  if (text.size() < 2 || text.size() > 12) return std::nullopt;
  int64_t unit_s = 0;
  switch (text.back()) {
    case 's':
      unit_s = 1;
      break;
    case 'm':
      unit_s = 60;
      break;
    case 'h':
      unit_s = 3600;
      break;
    case 'd':
      unit_s = 24 * 3600;
      break;
    default:
      return std::nullopt;
  }
  const std::string_view digits = text.substr(0, text.size() - 1);
  int64_t n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size() || n <= 0) return std::nullopt;
  if (n > kMaxTtl_s / unit_s) return std::nullopt;
  return n * unit_s;
}

int exit_code_for_keys(const core::Error& e) {
  switch (e.code) {
    case core::errc::not_found:
      return kDataDir;
    case core::errc::invalid_argument:
      return kBadInput;
    default:
      return kStorage;
  }
}

int run_issue(const IssueOptions& o) {
  if (o.data_dir.empty() == o.keys_file.empty()) {
    return fail(kUsage, "token issue: give exactly one of --data DIR or --keys FILE");
  }
  const auto ttl_s = parse_ttl_s(o.ttl);
  if (!ttl_s) {
    return fail(kUsage, fmt::format("--ttl \"{}\": use a count and a unit (30s, 15m, 1h, 7d), at "
                                    "most 365d",
                                    o.ttl));
  }
  for (const auto& r : o.roles) {
    if (!auth::is_known_role(r)) {
      return fail(kUsage, fmt::format("--role \"{}\": roles are admin, writer, reviewer, reader, "
                                      "replicator",
                                      r));
    }
  }

  std::optional<core::result<auth::KeyRing>> ring;
  if (!o.data_dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_directory(o.data_dir, ec)) {
      return fail(kDataDir, fmt::format("data directory {} does not exist", o.data_dir));
    }
    const std::filesystem::path path = core::DataDir(o.data_dir).token_keys_file();
    const bool existed = std::filesystem::exists(path, ec);
    ring.emplace(auth::KeyRing::load_or_create(path));
    if (*ring && !existed) fmt::print(stderr, "engram: created key file {}\n", path.string());
  } else {
    ring.emplace(auth::KeyRing::load(o.keys_file));
  }
  if (!*ring) return fail(exit_code_for_keys(ring->error()), ring->error().message);

  auth::TokenRequest request;
  request.subject = o.subject;
  request.roles = o.roles;
  if (!o.agent.empty()) request.agent = o.agent;
  request.issued_at_s = core::system_clock()->now_ns() / 1'000'000'000;
  request.ttl_s = *ttl_s;
  request.kid = o.kid;
  request.issuer = o.issuer;
  request.audience = o.audience;
  auto token = auth::sign_token(ring->value(), request);
  if (!token) return fail(kUsage, token.error().message);
  fmt::print("{}\n", *token);
  return kOk;
}

}  // namespace

void add_token_command(CLI::App& app, int& exit_code) {
  auto* token = app.add_subcommand("token", "Bearer tokens for the HTTP API");
  token->require_subcommand(1);
  auto o = std::make_shared<IssueOptions>();
  auto* issue = token->add_subcommand(
      "issue", "Sign a token and print it on stdout (nothing else); see docs/auth.md");
  auto* data = issue->add_option("--data", o->data_dir,
                                 "Data directory: use DIR/auth/keys.json, created if missing");
  auto* keys = issue->add_option("--keys", o->keys_file, "Key file to sign with");
  data->excludes(keys);
  issue
      ->add_option("--role", o->roles,
                   "Role (admin, writer, reviewer, reader, replicator); repeat or comma-separate")
      ->required()
      ->delimiter(',');
  issue->add_option("--sub", o->subject, "Subject: who the token is for")->required();
  issue->add_option("--ttl", o->ttl, "Lifetime: 30s, 15m, 1h, 7d (at most 365d)")
      ->capture_default_str();
  issue->add_option("--agent", o->agent, "Scope the token to this agent id");
  issue->add_option("--kid", o->kid, "Key to sign with (default: the first that can sign)");
  issue->add_option("--aud", o->audience, "Audience (default: the key file's)");
  issue->add_option("--iss", o->issuer, "Issuer (default: the key file's)");
  issue->callback([o, &exit_code] { exit_code = run_issue(*o); });
}

}  // namespace engram::cli
