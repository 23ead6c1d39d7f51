#include <doctest/doctest.h>
#include <rocksdb/db.h>

#include <nlohmann/json.hpp>

#include "core/keys.h"
#include "core/log.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

using engram::test::run;
using engram::test::RunResult;
using engram::test::TempDir;

namespace {

const std::string kEngram = ENGRAM_BINARY;

RunResult append(const std::string& dir, const std::string& stream, const std::string& input,
                 std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{kEngram, "append", "--data", dir, "--stream", stream};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run(argv, input);
}

std::vector<nlohmann::json> dump(const std::string& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{kEngram, "replay", "dump", "--data", dir};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const RunResult r = run(argv);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  std::vector<nlohmann::json> events;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) events.push_back(nlohmann::json::parse(line));
  return events;
}

}  // namespace

TEST_CASE("cli: append, replay dump and audit verify round trip") {
  TempDir dir;
  const std::string d = dir / "data";
  RunResult r =
      append(d, "orders",
             R"({"type":"Placed","data":{"sku":"a-1","qty":2},"metadata":{"via":"test"}})"
             "\n\n"
             R"({"id":"0190f0d0-0000-7000-8000-0000000000aa","type":"Paid","data":{"eur":9.5}})"
             "\n",
             {"--expected", "no_stream", "--json"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto result = nlohmann::json::parse(r.out);
  CHECK(result["first_position"] == 1);
  CHECK(result["last_position"] == 2);
  CHECK(result["stream_version"] == 2);
  CHECK(result["deduplicated"] == false);

  REQUIRE(append(d, "other",
                 R"({"type":"X","data":{}})"
                 "\n")
              .exit_code == 0);

  auto all = dump(d);
  REQUIRE(all.size() == 3);
  CHECK(all[0]["type"] == "Placed");
  CHECK(all[0]["data"]["qty"] == 2);
  CHECK(all[0]["metadata"]["via"] == "test");
  CHECK(all[1]["id"] == "0190f0d0-0000-7000-8000-0000000000aa");
  CHECK(all[1]["data"]["eur"] == 9.5);
  CHECK(all[2]["stream"] == "other");

  CHECK(dump(d, {"--stream", "orders"}).size() == 2);
  auto ranged = dump(d, {"--from", "2", "--to", "2"});
  REQUIRE(ranged.size() == 1);
  CHECK(ranged[0]["position"] == 2);

  const RunResult table = run({kEngram, "replay", "dump", "--data", d, "--format", "table"});
  CHECK(table.exit_code == 0);
  CHECK(table.out.find("POSITION") != std::string::npos);
  CHECK(table.out.find("Placed") != std::string::npos);

  const RunResult verify = run({kEngram, "audit", "verify", "--data", d, "--json"});
  REQUIRE_MESSAGE(verify.exit_code == 0, verify.err);
  const auto report = nlohmann::json::parse(verify.out);
  CHECK(report["ok"] == true);
  CHECK(report["events_checked"] == 3);
  CHECK(report["head_hash"] == all[2]["hash"]);

  // Retrying the same ids is idempotent.
  RunResult again =
      append(d, "orders",
             R"({"id":"0190f0d0-0000-7000-8000-0000000000aa","type":"Paid","data":{"eur":9.5}})"
             "\n");
  CHECK(again.exit_code == 0);
  CHECK(again.out.find("already appended") != std::string::npos);
  CHECK(dump(d).size() == 3);
}

TEST_CASE("cli: malformed input is rejected with exit 3 and writes nothing") {
  TempDir dir;
  const std::string d = dir / "data";
  REQUIRE(append(d, "s",
                 R"({"type":"First","data":{}})"
                 "\n")
              .exit_code == 0);
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "[";
  const std::vector<std::pair<std::string, std::string>> corpus = {
      {"{not json", "not valid JSON"},
      {R"({"type":"A","data":{}} trailing)", "not valid JSON"},
      {R"([1,2])", "expected a JSON object"},
      {R"({"data":{}})", "'type'"},
      {R"({"type":5,"data":{}})", "'type'"},
      {R"({"type":"A"})", "'data'"},
      {R"({"type":"A","data":[1]})", "'data'"},
      {R"({"type":"A","data":{},"metadata":"x"})", "'metadata'"},
      {R"({"type":"A","data":{},"id":"nope"})", "'id'"},
      {R"({"type":"A","data":{},"extra":1})", "unknown field 'extra'"},
      {R"({"type":"A","data":{"x":)" + deep + "}}", "deeper"},
      {"{\"type\":\"A\",\"data\":{\"x\":\"\xff\xfe\"}}", "not valid JSON"},
  };
  for (const auto& [input, expected_message] : corpus) {
    CAPTURE(input);
    // A good line first: the bad one must stop the whole append.
    const RunResult r = append(d, "s",
                               R"({"type":"Good","data":{}})"
                               "\n" +
                                   input + "\n");
    CHECK(r.exit_code == 3);
    CHECK_MESSAGE(r.err.find(expected_message) != std::string::npos, r.err);
  }
  const RunResult empty = append(d, "s", "\n  \n");
  CHECK(empty.exit_code == 3);
  CHECK(empty.err.find("no events") != std::string::npos);
  CHECK(dump(d).size() == 1);
}

TEST_CASE("cli: bad options exit 2, missing data dir exits 4, conflicts exit 5") {
  TempDir dir;
  const std::string d = dir / "data";
  CHECK(append(d, "s", R"({"type":"A","data":{}})", {"--expected", "sometimes"}).exit_code == 2);
  CHECK(run({kEngram, "append", "--data", d}).exit_code == 2);
  CHECK(run({kEngram, "frobnicate"}).exit_code == 2);
  CHECK(run({kEngram, "replay", "dump", "--data", d, "--format", "xml"}).exit_code == 2);

  const RunResult missing = run({kEngram, "replay", "dump", "--data", dir / "nowhere"});
  CHECK(missing.exit_code == 4);
  CHECK(missing.err.find("no engram log") != std::string::npos);
  CHECK(run({kEngram, "audit", "verify", "--data", dir / "nowhere"}).exit_code == 4);

  REQUIRE(append(d, "s", R"({"type":"A","data":{}})").exit_code == 0);
  const RunResult conflict =
      append(d, "s", R"({"type":"A","data":{}})", {"--expected", "no_stream"});
  CHECK(conflict.exit_code == 5);
  CHECK(conflict.err.find("wrong_expected_version") != std::string::npos);
}

TEST_CASE("cli: append refuses a domain stream, as POST /v1/streams does, and changes nothing") {
  TempDir dir;
  const std::string d = dir / "data";
  REQUIRE(append(d, "notes", R"({"type":"A","data":{}})").exit_code == 0);
  for (const std::string stream : {"memory-alice", "task-t1", "agent-a1"}) {
    const RunResult r = append(d, stream, R"({"type":"MemoryStored","data":{}})");
    CHECK(r.exit_code == 2);
    CHECK_MESSAGE(r.err.find("'" + stream + "' belongs to the domain; send a command instead") !=
                      std::string::npos,
                  r.err);
  }
  CHECK(dump(d).size() == 1);
}

TEST_CASE("cli: a data dir locked by a running writer is reported, and readers still work") {
  TempDir dir;
  const std::string d = dir / "data";
  REQUIRE(append(d, "s", R"({"type":"A","data":{}})").exit_code == 0);
  auto holder = engram::core::Log::open(d);
  REQUIRE(holder);
  const RunResult r = append(d, "s", R"({"type":"B","data":{}})");
  CHECK(r.exit_code == 4);
  CHECK(r.err.find("locked") != std::string::npos);
  CHECK(dump(d).size() == 1);
  CHECK(run({kEngram, "audit", "verify", "--data", d}).exit_code == 0);
}

TEST_CASE("cli: audit verify exits 1 and names the first tampered position") {
  TempDir dir;
  const std::string d = dir / "data";
  std::string input;
  for (int i = 1; i <= 5; ++i)
    input += R"({"type":"T","data":{"n":"value-)" + std::to_string(i) + "\"}}\n";
  REQUIRE(append(d, "s", input).exit_code == 0);
  {
    std::vector<std::string> names;
    REQUIRE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), d, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (auto& n : names) cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    REQUIRE(rocksdb::DB::Open(rocksdb::DBOptions(), d, cfs, &handles, &db).ok());
    rocksdb::ColumnFamilyHandle* events = nullptr;
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == engram::core::keys::kEventsCf) events = handles[i];
    }
    REQUIRE(events != nullptr);
    const std::string key = engram::core::keys::position_key(engram::core::Position(3));
    std::string value;
    REQUIRE(db->Get(rocksdb::ReadOptions(), events, key, &value).ok());
    const size_t at = value.find("value-3");
    REQUIRE(at != std::string::npos);
    value[at + 6] = '9';
    REQUIRE(db->Put(rocksdb::WriteOptions(), events, key, value).ok());
    for (auto* h : handles) (void)db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  const RunResult r = run({kEngram, "audit", "verify", "--data", d});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.out.find("BROKEN at position 3") != std::string::npos, r.out);
}
