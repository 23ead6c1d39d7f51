// engram audit: who did what, when, why, and has anything been altered.
// The queries are adapters/audit; this file opens the data dir and renders.

#include <fmt/format.h>
#include <sched.h>
#include <stdlib.h>

#include <fstream>
#include <thread>

#include "adapters/audit/audit.h"
#include "commands/render.h"
#include "core/checkpoint.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log_tree.h"
#include "core/time.h"
#include "projections/audit.h"
#include "projections/projection.h"
#include "tools/engram/cli.h"
#include "tools/engram/commands.h"
#include "tools/engram/storage.h"
#include "tools/engram/table.h"

namespace engram::cli {
namespace {

using audit::json;

constexpr size_t kMaxProofFileBytes = 8 << 20;

struct AuditFlags {
  std::string data_dir;
  std::string config_file;  // a serve config: where it keeps the signing key
  bool json = false;
  // verify
  std::string checkpoints_file;
  std::string public_key;
  uint64_t from = 1;
  uint64_t to = UINT64_MAX;
  // Workers each read and hash their own chunks of the log: one per core.
  size_t threads = std::max<size_t>(1, std::thread::hardware_concurrency());
  // checkpoint
  bool sign = false;
  std::string export_file;
  // history, state
  std::string stream;
  uint64_t from_version = 1;
  size_t limit = 1000;
  uint64_t at = 0;
  // trace
  std::string correlation;
  // actor
  std::string actor;
  std::optional<std::string> since;  // set even when given empty, so "" is refused
  std::optional<std::string> until;
  uint64_t cursor = 0;
  // proof, consistency
  uint64_t position = 0;
  uint64_t tree_size = 0;
  uint64_t old_size = 0;
  uint64_t new_size = 0;
  std::string out_file;
  // verify-proof
  std::string proof_file;
};

// The data dir, opened as RocksDB secondary instances (the log and the read
// models) and a read-only key store: it never blocks a running server and
// sees everything it has written. The secondaries' own files live in a
// temporary directory removed on exit.
class AuditLog {
 public:
  static std::unique_ptr<AuditLog> open(const core::DataDir& dir, int& code) {
    // An audit must not slow the server it inspects: on a busy machine it
    // runs only on CPU time the server leaves idle. Threads started later
    // (RocksDB's, the hashers) inherit the policy. ENGRAM_AUDIT_PRIORITY=normal
    // opts out (an audit of a stopped server on a busy machine).
    const char* priority = std::getenv("ENGRAM_AUDIT_PRIORITY");
    if (priority == nullptr || std::string_view(priority) != "normal") {
      sched_param param{};
      (void)sched_setscheduler(0, SCHED_IDLE, &param);  // best effort: a refusal changes nothing
    }
    auto a = std::unique_ptr<AuditLog>(new AuditLog(dir));
    std::string tmpl = (std::filesystem::temp_directory_path() / "engram-audit-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      code = fail(kStorage, "cannot create a temporary directory for the secondary instance");
      return nullptr;
    }
    a->secondary_dir_ = tmpl;
    auto storage = open_storage(dir, Access::follow, code, {}, a->secondary_dir_);
    if (!storage) return nullptr;
    a->storage_ = std::move(*storage);
    auto store = a->storage_.models->store(fmt::format(
        "{}@v{}", projections::AuditProjection::kName, projections::AuditProjection::kVersion));
    a->index_ = store ? *store : nullptr;  // none yet: the queries scan the log's tail
    return a;
  }
  ~AuditLog() {
    storage_ = Storage{};
    std::error_code ec;
    if (!secondary_dir_.empty()) std::filesystem::remove_all(secondary_dir_, ec);
  }
  audit::Sources sources() const {
    const core::KeyStore* keys = storage_.keys.get();
    return audit::Sources{
        *storage_.log,
        [keys](const core::RecordedEvent& e) {
          return commands::render_event_json(e, commands::RenderContext{*keys});
        },
        index_, dir_.checkpoints_file()};
  }
  core::Log& log() { return *storage_.log; }
  const core::DataDir& dir() const { return dir_; }

 private:
  explicit AuditLog(const core::DataDir& dir) : dir_(dir) {}
  core::DataDir dir_;
  std::filesystem::path secondary_dir_;
  Storage storage_;
  const core::ModelStore* index_ = nullptr;
};

std::unique_ptr<AuditLog> open_audit(const AuditFlags& f, int& code) {
  auto dir = data_dir_of(f.data_dir, f.config_file, code);
  if (!dir) return nullptr;
  return AuditLog::open(*dir, code);
}

int query_failed(const core::Error& e) {
  if (e.code == core::errc::invalid_argument) return fail(kUsage, e.message);
  if (e.code == core::errc::not_found) return fail(kDataDir, e.message);
  return fail(exit_code_for(e), e.to_string());
}

void print_json(const json& j) {
  fmt::print("{}\n", j.dump(2, ' ', false, json::error_handler_t::replace));
}

std::string text(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return "-";
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

// A UUID shortened for a table: its first 8 hex digits (unique enough to
// follow by eye; --json has them whole).
std::string short_id(const json& j, const char* key) {
  const std::string s = text(j, key);
  return s == "-" ? s : s.substr(0, 8);
}

void event_table(const json& events, bool with_stream) {
  std::vector<std::string> header{"POSITION"};
  if (with_stream) header.push_back("STREAM");
  for (const char* h :
       {"VERSION", "TYPE", "RECORDED_AT", "ACTOR", "COMMAND", "CORRELATION", "CAUSATION"}) {
    header.push_back(h);
  }
  Table t(header);
  for (const auto& e : events) {
    std::vector<std::string> r{text(e, "position")};
    if (with_stream) r.push_back(text(e, "stream"));
    r.push_back(text(e, "version"));
    r.push_back(text(e, "type"));
    r.push_back(text(e, "recorded_at"));
    r.push_back(text(e, "actor"));
    r.push_back(short_id(e, "command_id"));
    r.push_back(short_id(e, "correlation_id"));
    r.push_back(short_id(e, "causation_id"));
    t.add(std::move(r));
  }
  t.print();
}

std::optional<core::PublicKey> trusted_key(const std::string& arg, int& code) {
  if (arg.empty()) return std::nullopt;
  auto k = core::load_public_key(arg);
  if (!k) {
    code = fail(kUsage, "--public-key: " + k.error().message);
    return std::nullopt;
  }
  return *k;
}

int write_or_print(const json& j, const std::string& out_file) {
  if (out_file.empty()) {
    print_json(j);
    return kOk;
  }
  std::ofstream out(out_file, std::ios::trunc);
  out << j.dump(2) << "\n";
  out.close();
  if (!out) return fail(kStorage, fmt::format("cannot write '{}'", out_file));
  fmt::print(stderr, "engram: wrote {}\n", out_file);
  return kOk;
}

int run_verify(const AuditFlags& f) {
  int code = kOk;
  auto trusted = trusted_key(f.public_key, code);
  if (code != kOk) return code;
  auto a = open_audit(f, code);
  if (!a) return code;
  const uint64_t head = a->log().head().position.value();
  Progress progress("verify", head, head > 100'000);
  audit::VerifyOptions o;
  o.from = core::Position(f.from);
  o.to = core::Position(f.to);
  if (!f.checkpoints_file.empty()) o.checkpoints_file = f.checkpoints_file;
  o.trusted = trusted;
  o.public_key_file = a->dir().signing_public_key_file();
  o.threads = f.threads;
  o.progress = [&](uint64_t done, uint64_t) { progress.update(done); };
  auto r = audit::verify(a->sources(), o);
  if (!r) return query_failed(r.error());
  const json& j = *r;
  if (f.json) {
    print_json(j);
  } else {
    Table t({"CHECK", "RESULT"});
    t.add({"events checked", text(j, "events_checked")});
    t.add({"head position", text(j, "head_position")});
    t.add({"head hash", text(j, "head_hash")});
    if (j.value("whole_log", false)) {
      t.add({"tree root", text(j, "tree_root")});
      t.add({"tree nodes checked", text(j, "tree_nodes_checked")});
      t.add({"index entries checked", text(j, "index_entries_checked")});
      t.add({"streams checked", text(j, "streams_checked")});
    }
    if (j.contains("problem")) {
      const uint64_t at = j["first_bad_position"].get<uint64_t>();
      t.add({"chain", bad(at > 0 ? fmt::format("BROKEN at position {}: {}", at,
                                               j["problem"].get<std::string>())
                                 : "BROKEN: " + j["problem"].get<std::string>())});
    } else {
      t.add({"chain", good("ok")});
    }
    if (j.contains("checkpoints")) {
      const json& c = j["checkpoints"];
      t.add({"checkpoint file", text(c, "file")});
      t.add({"checkpoint key",
             text(c, "key_id") + (c.value("key_pinned", false) ? "" : " (not pinned)")});
      t.add({"checkpoints checked", text(c, "checked")});
      if (c.value("ok", false)) {
        t.add({"checkpoints", good("ok")});
      } else {
        const json& b = c["first_bad"];
        t.add({"checkpoints",
               bad(fmt::format("FAILED at line {} (position {}): {}", b["line"].get<uint64_t>(),
                               b["position"].get<uint64_t>(), b["problem"].get<std::string>()))});
      }
    }
    t.print();
  }
  return j.value("ok", false) ? kOk : kVerifyFailed;
}

int run_checkpoint(const AuditFlags& f) {
  int code = kOk;
  if (f.sign) {
    // Signing needs the writer's view (what is acknowledged), so the
    // server must be stopped: the open fails with exit 4 when it runs.
    auto dir = data_dir_of(f.data_dir, f.config_file, code);
    if (!dir) return code;
    auto log = open_log(*dir, code, core::LogOptions{});
    if (!log) return code;
    auto key = core::SigningKey::load_or_create(dir->signing_key_file());
    if (!key) return fail(kStorage, key.error().message);
    const core::Head head = log->head();
    auto root = core::LogTree(*log).root(head.position);
    if (!root) return fail(kStorage, root.error().to_string());
    const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    const auto c =
        core::Checkpoint::sign(*key, log->log_id(), head.position, head.hash, *root, now_ns);
    if (auto w = core::CheckpointFile(dir->checkpoints_file()).append(c); !w) {
      return fail(kStorage, w.error().message);
    }
  }
  auto a = open_audit(f, code);
  if (!a) return code;
  auto r = audit::checkpoints(a->sources());
  if (!r) return query_failed(r.error());
  if (!f.export_file.empty()) {
    std::vector<core::Checkpoint> cs;
    for (const auto& c : (*r)["checkpoints"]) cs.push_back(core::Checkpoint::from_json(c).value());
    if (auto w = core::write_checkpoints(f.export_file, cs); !w) {
      return fail(kStorage, w.error().message);
    }
    fmt::print(stderr, "engram: exported {} checkpoints to {}\n", cs.size(), f.export_file);
  }
  if (f.json) {
    print_json(*r);
    return kOk;
  }
  Table t({"POSITION", "SIGNED_AT", "KEY", "HEAD_HASH", "TREE_ROOT"});
  for (const auto& c : (*r)["checkpoints"]) {
    t.add({text(c, "position"), text(c, "signed_at"), text(c, "key_id"),
           text(c, "head_hash").substr(0, 16), text(c, "tree_root").substr(0, 16)});
  }
  t.print();
  return kOk;
}

int run_history(const AuditFlags& f) {
  int code = kOk;
  auto a = open_audit(f, code);
  if (!a) return code;
  auto r = audit::history(a->sources(), f.stream, f.from_version, f.limit);
  if (!r) return query_failed(r.error());
  if (f.json) {
    print_json(*r);
  } else {
    fmt::print("stream {} (version {}){}\n", f.stream, (*r)["version"].get<uint64_t>(),
               (*r)["truncated"].get<bool>() ? ", more after this page" : "");
    event_table((*r)["events"], false);
  }
  return kOk;
}

void print_trace_node(const json& command, const std::string& indent) {
  fmt::print(
      "{}command {} by {} on {}{}\n", indent, text(command, "command_id"), text(command, "actor"),
      text(command, "stream"),
      command["caused_by"].is_null() ? "" : " (caused by " + short_id(command, "caused_by") + ")");
  for (const auto& e : command["events"]) {
    fmt::print("{}  #{} {} {} v{} {} id {}\n", indent, text(e, "position"), text(e, "type"),
               text(e, "stream"), text(e, "version"), text(e, "recorded_at"), short_id(e, "id"));
    for (const auto& child : e["caused"]) print_trace_node(child, indent + "    ");
  }
  for (const auto& child : command["caused"]) print_trace_node(child, indent + "  ");
}

int run_trace(const AuditFlags& f) {
  auto id = core::Uuid::parse(f.correlation);
  if (!id) return fail(kUsage, "CORRELATION_ID must be a UUID");
  int code = kOk;
  auto a = open_audit(f, code);
  if (!a) return code;
  auto r = audit::trace(a->sources(), *id);
  if (!r) return query_failed(r.error());
  if (f.json) {
    print_json(*r);
  } else {
    fmt::print("correlation {}: {} events{}\n", f.correlation, (*r)["events"].get<uint64_t>(),
               (*r)["truncated"].get<bool>() ? " (cut at the bound)" : "");
    for (const auto& root : (*r)["roots"]) print_trace_node(root, "");
  }
  return kOk;
}

int run_actor(const AuditFlags& f) {
  int64_t since = INT64_MIN;
  int64_t until = INT64_MAX;
  if (f.since) {
    auto t = core::parse_time_bound_ns(*f.since);
    if (!t) return fail(kUsage, "--since: " + t.error().message);
    since = *t;
  }
  if (f.until) {
    auto t = core::parse_time_bound_ns(*f.until);
    if (!t) return fail(kUsage, "--until: " + t.error().message);
    until = *t;
  }
  int code = kOk;
  auto a = open_audit(f, code);
  if (!a) return code;
  auto r = audit::actor(a->sources(), f.actor, since, until, core::Position(f.cursor), f.limit);
  if (!r) return query_failed(r.error());
  if (f.json) {
    print_json(*r);
  } else {
    event_table((*r)["events"], true);
    if ((*r)["truncated"].get<bool>()) {
      fmt::print("more: --cursor {}\n", (*r)["next_cursor"].get<uint64_t>());
    }
  }
  return kOk;
}

int run_state(const AuditFlags& f) {
  int code = kOk;
  auto a = open_audit(f, code);
  if (!a) return code;
  const core::Position at = f.at == 0 ? a->log().head().position : core::Position(f.at);
  auto r = audit::state(a->sources(), f.stream, at);
  if (!r) return query_failed(r.error());
  if (f.json) {
    print_json(*r);
  } else {
    fmt::print("{} at position {}: version {}, last event at {} ({})\n", f.stream, at.value(),
               (*r)["version"].get<uint64_t>(), (*r)["position"].get<uint64_t>(),
               text(*r, "recorded_at"));
    Table t({"FIELD", "VALUE"});
    for (const auto& [k, v] : (*r)["state"].items()) {
      t.add({k, v.is_string() ? v.get<std::string>() : v.dump()});
    }
    t.print();
  }
  return kOk;
}

int run_proof(const AuditFlags& f) {
  int code = kOk;
  auto a = open_audit(f, code);
  if (!a) return code;
  std::optional<core::Position> size;
  if (f.tree_size > 0) size = core::Position(f.tree_size);
  auto r = audit::inclusion_proof(a->sources(), core::Position(f.position), size);
  if (!r) return query_failed(r.error());
  return write_or_print(*r, f.out_file);
}

int run_consistency(const AuditFlags& f) {
  int code = kOk;
  auto a = open_audit(f, code);
  if (!a) return code;
  auto r = audit::consistency_proof(a->sources(), core::Position(f.old_size),
                                    core::Position(f.new_size));
  if (!r) return query_failed(r.error());
  return write_or_print(*r, f.out_file);
}

int run_verify_proof(const AuditFlags& f) {
  int code = kOk;
  auto trusted = trusted_key(f.public_key, code);
  if (code != kOk) return code;
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(f.proof_file, ec);
  if (ec) return fail(kDataDir, fmt::format("cannot read '{}': {}", f.proof_file, ec.message()));
  if (bytes > kMaxProofFileBytes) {
    return fail(kBadInput, fmt::format("'{}' is {} bytes, over the limit of {}", f.proof_file,
                                       bytes, kMaxProofFileBytes));
  }
  const auto content = core::read_file(f.proof_file, kMaxProofFileBytes);
  if (!content) {
    return fail(kDataDir,
                fmt::format("cannot read '{}': {}", f.proof_file, content.error().message));
  }
  const auto proof = core::parse_json(*content);
  if (!proof) return fail(kBadInput, fmt::format("'{}': {}", f.proof_file, proof.error().message));
  const json r = audit::verify_proof(*proof, trusted);
  if (f.json) {
    print_json(r);
  } else if (r["ok"].get<bool>()) {
    fmt::print("{} proof {} (key {}{})\n", text(r, "kind"), good("verified"), text(r, "key_id"),
               r["key_pinned"].get<bool>() ? "" : ", not pinned: pass --public-key");
  } else {
    fmt::print("proof {}: {}\n", bad("FAILED"), text(r, "problem"));
  }
  return r["ok"].get<bool>() ? kOk : kVerifyFailed;
}

// --data, and --config for a server whose config moves the signing key.
void add_data_options(CLI::App* cmd, AuditFlags& f) {
  cmd->add_option("--data", f.data_dir, "Data directory of the log")->required();
  cmd->add_option("--config", f.config_file,
                  "The server's config file: its signing_key_file is the key to sign and verify "
                  "with (default: DATA/audit/signing-key.pem)");
}

}  // namespace

void add_audit_command(CLI::App& app, int& exit_code) {
  auto* audit = app.add_subcommand(
      "audit", "Who did what, when, why, and has anything been altered (docs/cli.md)");
  audit->require_subcommand(1);
  auto f = std::make_shared<AuditFlags>();
  auto data = [&](CLI::App* cmd) {
    add_data_options(cmd, *f);
    cmd->add_flag("--json", f->json, "Print the answer as JSON");
  };
  auto run = [&](CLI::App* cmd, int (*fn)(const AuditFlags&)) {
    cmd->callback([f, fn, &exit_code] { exit_code = fn(*f); });
  };

  auto* verify = audit->add_subcommand(
      "verify",
      "Walk the hash chain, the Merkle tree and the stream index, and hold the log to its "
      "signed checkpoints; exit 1 naming the first problem");
  data(verify);
  verify->add_option("--checkpoints", f->checkpoints_file,
                     "Exported checkpoints to hold the log to (default: the data dir's own)");
  verify->add_option("--public-key", f->public_key,
                     "Trusted signing key: 64 hex digits or a .pub file (default: the data "
                     "dir's audit/signing-key.pem.pub)");
  verify->add_option("--from", f->from, "First position of the chain to walk")
      ->capture_default_str();
  verify->add_option("--to", f->to, "Last position of the chain to walk");
  verify->add_option("--threads", f->threads, "Worker threads (0..16; default: one per core)")
      ->capture_default_str()
      ->check(CLI::Range(0, 16));
  run(verify, run_verify);

  auto* checkpoint = audit->add_subcommand(
      "checkpoint",
      "List the signed checkpoints; --sign signs the head now (server stopped); "
      "--export writes them to a file for an auditor");
  data(checkpoint);
  checkpoint->add_flag("--sign", f->sign, "Sign the head now (the server must be stopped)");
  checkpoint->add_option("--export", f->export_file, "Write the checkpoints to this file");
  run(checkpoint, run_checkpoint);

  auto* history = audit->add_subcommand(
      "history", "Every event of a stream with actor, time, command, correlation and causation");
  data(history);
  history->add_option("STREAM", f->stream, "Stream name")->required();
  history->add_option("--from-version", f->from_version, "First version")->capture_default_str();
  history->add_option("--limit", f->limit, "At most this many events (1..10000)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000));
  run(history, run_history);

  auto* trace = audit->add_subcommand(
      "trace", "The tree of everything one correlation's commands caused, by causation ids");
  data(trace);
  trace->add_option("CORRELATION_ID", f->correlation, "Correlation id (UUID)")->required();
  run(trace, run_trace);

  auto* actor = audit->add_subcommand("actor", "All that one actor did, from the audit index");
  data(actor);
  actor->add_option("ACTOR", f->actor, "Actor (a token's subject)")->required();
  actor->add_option_function<std::string>(
      "--since", [f](const std::string& v) { f->since = v; },
      "From this time: RFC 3339 (2026-01-02T03:04:05Z) or integer Unix ns");
  actor->add_option_function<std::string>(
      "--until", [f](const std::string& v) { f->until = v; },
      "Up to this time: RFC 3339 (2026-01-02T03:04:05Z) or integer Unix ns");
  actor->add_option("--limit", f->limit, "At most this many events (1..10000)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000));
  actor->add_option("--cursor", f->cursor, "Continue after this position (from a previous page)");
  run(actor, run_actor);

  auto* state = audit->add_subcommand(
      "state", "A domain aggregate's state as of a log position (time travel)");
  data(state);
  state->add_option("STREAM", f->stream, "Domain stream (agent-…, project-…, task-…)")->required();
  state->add_option("--at", f->at, "Log position (default: the head)");
  run(state, run_state);

  auto* proof = audit->add_subcommand(
      "proof", "An inclusion proof of one event against a signed checkpoint (JSON)");
  add_data_options(proof, *f);
  proof->add_option("POSITION", f->position, "Position of the event")->required();
  proof->add_option("--tree-size", f->tree_size,
                    "The checkpoint to prove against, by its position (default: the newest)");
  proof->add_option("--out", f->out_file, "Write the proof here instead of stdout");
  run(proof, run_proof);

  auto* consistency = audit->add_subcommand(
      "consistency", "A proof that a later signed checkpoint extends an earlier one (JSON)");
  add_data_options(consistency, *f);
  consistency->add_option("OLD", f->old_size, "The earlier checkpoint's position")->required();
  consistency->add_option("NEW", f->new_size, "The later checkpoint's position")->required();
  consistency->add_option("--out", f->out_file, "Write the proof here instead of stdout");
  run(consistency, run_consistency);

  auto* verify_proof = audit->add_subcommand(
      "verify-proof", "Check a proof file with no database: signatures, event hash, Merkle path");
  verify_proof->add_option("FILE", f->proof_file, "The proof (from audit proof/consistency)")
      ->required();
  verify_proof->add_option("--public-key", f->public_key,
                           "Trusted signing key: 64 hex digits or a .pub file");
  verify_proof->add_flag("--json", f->json, "Print the result as JSON");
  run(verify_proof, run_verify_proof);
}

}  // namespace engram::cli
