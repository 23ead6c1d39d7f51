#include "projections/knowledge.h"

#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "adapters/embed/hashing_embedder.h"
#include "projections/worker.h"
#include "tests/commands/harness.h"

using namespace engram;
using nlohmann::json;
using projections::KnowledgeHit;
using projections::KnowledgeProjection;
using projections::KnowledgeQuery;
using Mode = projections::KnowledgeQuery::Mode;

namespace {

constexpr auto kWait = std::chrono::seconds(5);

std::shared_ptr<const projections::TextEmbedder> hashing(size_t dimensions = 384) {
  return std::make_shared<embed::HashingEmbedder>(dimensions);
}

// A knowledge projection kept by a worker over the fixture's log.
struct Model {
  explicit Model(test::BusFixture& f, projections::WorkerOptions options = {}) : log_(*f.log) {
    knowledge = std::make_shared<KnowledgeProjection>(hashing());
    auto w = projections::Worker::start(*f.log, *f.models, knowledge, std::move(options));
    REQUIRE(w);
    worker = std::move(*w);
  }
  // For a wrapped projection: the wrapper's inner one.
  Model(test::BusFixture& f, std::shared_ptr<KnowledgeProjection> inner,
        std::shared_ptr<projections::Projection> wrapper)
      : log_(*f.log), knowledge(std::move(inner)) {
    auto w = projections::Worker::start(*f.log, *f.models, std::move(wrapper));
    REQUIRE(w);
    worker = std::move(*w);
  }

  void sync() {
    const core::Position head = log_.head().position;
    worker->wait_for(head, kWait);
    REQUIRE_MESSAGE(!worker->stats().failed, worker->stats().failure);
    REQUIRE(worker->position() >= head);
  }

  core::result<std::vector<KnowledgeHit>> search(const KnowledgeQuery& q) const {
    return projections::search_knowledge(*knowledge, worker->store(), q);
  }
  std::vector<KnowledgeHit> hits(const std::string& text, Mode mode = Mode::hybrid,
                                 std::string domain = {}, std::string tag = {},
                                 std::string agent = {}, size_t limit = 20) const {
    KnowledgeQuery q;
    q.text = text;
    q.mode = mode;
    q.domain = std::move(domain);
    q.tag = std::move(tag);
    q.agent = std::move(agent);
    q.limit = limit;
    auto r = search(q);
    REQUIRE_MESSAGE(r.has_value(), text, " -> ", r ? "" : r.error().to_string());
    return std::move(*r);
  }
  std::vector<std::string> ids(const std::string& text, Mode mode = Mode::hybrid,
                               std::string domain = {}, std::string tag = {},
                               std::string agent = {}, size_t limit = 20) const {
    std::vector<std::string> out;
    for (const auto& h :
         hits(text, mode, std::move(domain), std::move(tag), std::move(agent), limit)) {
      out.push_back(h.item["id"].get<std::string>());
    }
    return out;
  }
  std::optional<json> get(const std::string& id) const {
    auto r = projections::get_knowledge(worker->store(), id);
    REQUIRE(r);
    return *r;
  }

  core::Log& log_;
  std::shared_ptr<KnowledgeProjection> knowledge;
  std::unique_ptr<projections::Worker> worker;
};

bool has(const std::vector<std::string>& v, const std::string& id) {
  return std::find(v.begin(), v.end(), id) != v.end();
}

json record(const std::string& id, const std::string& title, const std::string& body,
            const std::string& domain = "ml", json tags = json::array(),
            const std::string& agent = "a1") {
  return {{"knowledge_id", id}, {"title", title},          {"body", body},
          {"domain", domain},   {"tags", std::move(tags)}, {"source_agent", agent},
          {"confidence", 0.5}};
}

// A small corpus for ranking and filter tests.
void seed(test::BusFixture& f) {
  f.ok("RegisterAgent", {{"agent_id", "a1"}, {"name", "One"}});
  f.ok("RegisterAgent", {{"agent_id", "a2"}, {"name", "Two"}});
  f.ok("RecordKnowledge",
       record("fold", "Protein folding",
              "Protein folding simulations show how a protein chain folds into its structure.",
              "bio", {"proteins", "Simulation"}, "a1"));
  f.ok("RecordKnowledge",
       record("diet", "Dietary notes", "Athletes eat protein after training; most meals are pasta.",
              "health", {"food"}, "a2"));
  f.ok("RecordKnowledge",
       record("attn", "Attention in transformers",
              "Transformers use self-attention to weigh tokens against each other.", "ml", {"nlp"},
              "a1"));
}

// Every key and value of a store.
std::vector<std::pair<std::string, std::string>> dump(const core::ModelStore& s) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string from;
  for (;;) {
    auto page = s.scan("", from, core::ModelStore::kMaxScanEntries);
    REQUIRE(page);
    out.insert(out.end(), page->begin(), page->end());
    if (page->size() < core::ModelStore::kMaxScanEntries) return out;
    from = page->back().first + std::string(1, '\0');
  }
}

// Forwards to a KnowledgeProjection but, once `drop` is set, never lets it
// take in a commit nor close: as if the process died right after every
// store commit, before committed().
class DroppingCommitted final : public projections::Projection {
 public:
  explicit DroppingCommitted(std::shared_ptr<KnowledgeProjection> inner)
      : inner_(std::move(inner)) {}
  std::string_view name() const override { return inner_->name(); }
  uint32_t version() const override { return inner_->version(); }
  std::vector<std::string> event_types() const override { return inner_->event_types(); }
  core::result<void> apply(std::span<const core::RecordedEvent> events,
                           core::ModelStore::Batch& batch) override {
    return inner_->apply(events, batch);
  }
  core::result<core::Position> open(const core::ModelStore& store,
                                    const std::filesystem::path& dir) override {
    return inner_->open(store, dir);
  }
  core::result<void> refresh(std::span<const core::RecordedEvent> events,
                             const core::ModelStore& store) override {
    return inner_->refresh(events, store);
  }
  core::result<void> committed(const core::ModelStore& store, core::Position position) override {
    if (drop.load()) return {};
    return inner_->committed(store, position);
  }
  void close(const core::ModelStore& store) override {
    if (!drop.load()) inner_->close(store);
  }
  std::atomic<bool> drop{false};

 private:
  std::shared_ptr<KnowledgeProjection> inner_;
};

}  // namespace

TEST_CASE("knowledge: keyword search ranks with BM25, stems, and reads the records") {
  test::BusFixture f;
  seed(f);
  Model m(f);
  m.sync();

  // "fold" says protein four times (title included); "diet" once.
  auto hits = m.hits("protein", Mode::keyword);
  REQUIRE(hits.size() == 2);
  CHECK(hits[0].item["id"] == "fold");
  CHECK(hits[1].item["id"] == "diet");
  CHECK(hits[0].score > hits[1].score);
  CHECK(hits[0].keyword_rank == 1u);
  CHECK(hits[1].keyword_rank == 2u);
  CHECK_FALSE(hits[0].semantic_rank.has_value());

  // Stemming: "simulated" and "fold" meet "simulations" and "folding".
  CHECK(m.ids("simulated", Mode::keyword) == std::vector<std::string>{"fold"});
  CHECK(m.ids("fold", Mode::keyword) == std::vector<std::string>{"fold"});
  CHECK(m.ids("transformer attentions", Mode::keyword) == std::vector<std::string>{"attn"});
  // Boolean syntax and title: prefix.
  CHECK(m.ids("protein AND pasta", Mode::keyword) == std::vector<std::string>{"diet"});
  CHECK(m.ids("protein -pasta", Mode::keyword) == std::vector<std::string>{"fold"});
  CHECK(m.ids("title:protein", Mode::keyword) == std::vector<std::string>{"fold"});
  CHECK(m.ids("\"protein folding\"", Mode::keyword) == std::vector<std::string>{"fold"});
  CHECK(m.ids("zebra", Mode::keyword).empty());
  CHECK(m.ids("!!!", Mode::keyword).empty());

  auto fold = m.get("fold");
  REQUIRE(fold);
  CHECK((*fold)["title"] == "Protein folding");
  CHECK((*fold)["domain"] == "bio");
  CHECK((*fold)["tags"] == json({"proteins", "Simulation"}));
  CHECK((*fold)["agent"] == "a1");
  CHECK((*fold)["source_task"].is_null());
  CHECK((*fold)["confidence"] == 0.5);
  CHECK((*fold)["revisions"] == 0);
  CHECK((*fold)["embedding"] == "embedder");
  CHECK((*fold)["created_position"] == (*fold)["updated_position"]);
  CHECK((*fold)["created_at_ns"].get<int64_t>() > 0);
  CHECK_FALSE(m.get("nope").has_value());
}

TEST_CASE("knowledge: domain, tag and agent filters in every mode, and transfer moves the agent") {
  test::BusFixture f;
  seed(f);
  Model m(f);
  m.sync();

  for (Mode mode : {Mode::keyword, Mode::semantic, Mode::hybrid}) {
    CAPTURE(static_cast<int>(mode));
    CHECK(m.ids("protein", mode, "bio") == std::vector<std::string>{"fold"});
    CHECK(m.ids("protein", mode, "health") == std::vector<std::string>{"diet"});
    CHECK(m.ids("protein", mode, "BIO") == std::vector<std::string>{"fold"});  // case-insensitive
    CHECK(m.ids("protein", mode, "chem").empty());
    CHECK(m.ids("protein", mode, {}, "food") == std::vector<std::string>{"diet"});
    CHECK(m.ids("protein", mode, {}, "simulation") == std::vector<std::string>{"fold"});
    CHECK(m.ids("protein", mode, {}, "simul").empty());  // exact values, not prefixes
    CHECK(m.ids("protein", mode, {}, {}, "a2") == std::vector<std::string>{"diet"});
    CHECK(m.ids("protein", mode, "bio", "proteins", "a1") == std::vector<std::string>{"fold"});
    CHECK(m.ids("protein", mode, "bio", "proteins", "a2").empty());
  }

  f.ok("TransferKnowledge", {{"knowledge_id", "fold"}, {"to_agent", "a2"}});
  m.sync();
  CHECK((*m.get("fold"))["agent"] == "a2");
  for (Mode mode : {Mode::keyword, Mode::semantic, Mode::hybrid}) {
    CAPTURE(static_cast<int>(mode));
    CHECK_FALSE(has(m.ids("protein", mode, {}, {}, "a1"), "fold"));
    auto a2 = m.ids("protein", mode, {}, {}, "a2");
    CHECK(a2.size() == 2);
    CHECK(has(a2, "fold"));
    CHECK(has(a2, "diet"));
  }
}

TEST_CASE("knowledge: semantic search finds shared words and hybrid fuses both sides") {
  test::BusFixture f;
  f.ok("RegisterAgent", {{"agent_id", "a1"}, {"name", "One"}});
  // Semantic only: "neuroscience" shares character trigrams with "neuro"
  // but is another word for Xapian.
  f.ok("RecordKnowledge", record("sem", "Cortex mapping", "Neuroscience of cortical columns."));
  // Keyword only: the word is there, but the item's own vector (same
  // embedder, so it is kept) points away from the query's.
  const embed::HashingEmbedder e;
  std::vector<float> away = e.embed("neuro");
  for (float& x : away) x = -x;
  json kw = record("kw", "Lab notes", "The neuro ward moved upstairs.");
  kw["embedding"] = away;
  kw["embedder"] = projections::embedder_id(e);
  f.ok("RecordKnowledge", kw);
  // Both sides.
  f.ok("RecordKnowledge", record("both", "Neuro basics", "Neuro imaging and neuro signals."));
  f.ok("RecordKnowledge", record("other", "Gardening", "Tomatoes like sun and water."));
  Model m(f);
  m.sync();
  CHECK((*m.get("kw"))["embedding"] == "event");

  auto semantic = m.hits("neuro", Mode::semantic);
  REQUIRE(semantic.size() >= 2);
  CHECK(semantic[0].item["id"] == "both");
  CHECK(semantic[0].semantic_rank == 1u);
  CHECK(semantic[0].score > 0);
  std::vector<std::string> semantic_ids;
  for (const auto& h : semantic) semantic_ids.push_back(h.item["id"]);
  CHECK(has(semantic_ids, "sem"));
  CHECK_FALSE(has(semantic_ids, "kw"));  // cosine -1: nothing in common

  const auto keyword = m.ids("neuro", Mode::keyword);
  CHECK(has(keyword, "kw"));
  CHECK(has(keyword, "both"));
  CHECK_FALSE(has(keyword, "sem"));

  auto hybrid = m.hits("neuro", Mode::hybrid);
  REQUIRE(hybrid.size() >= 3);
  CHECK(hybrid[0].item["id"] == "both");
  REQUIRE(hybrid[0].keyword_rank.has_value());
  REQUIRE(hybrid[0].semantic_rank.has_value());
  CHECK(hybrid[0].score ==
        doctest::Approx(1.0 / (60.0 + static_cast<double>(*hybrid[0].keyword_rank)) +
                        1.0 / (60.0 + static_cast<double>(*hybrid[0].semantic_rank))));
  bool saw_kw = false;
  bool saw_sem = false;
  for (const auto& h : hybrid) {
    if (h.item["id"] == "kw") {
      saw_kw = true;
      CHECK(h.keyword_rank.has_value());
      CHECK_FALSE(h.semantic_rank.has_value());
    }
    if (h.item["id"] == "sem") {
      saw_sem = true;
      CHECK(h.semantic_rank.has_value());
      CHECK_FALSE(h.keyword_rank.has_value());
    }
    CHECK(h.score <= hybrid[0].score);
  }
  CHECK(saw_kw);
  CHECK(saw_sem);
}

TEST_CASE("knowledge: foreign or misshapen event embeddings are replaced by the embedder's") {
  test::BusFixture f;
  json foreign = record("foreign", "Graph search", "Breadth first search over graphs.");
  foreign["embedding"] = {0.5, 0.5, 0.5};
  foreign["embedder"] = "mini-lm/2";
  f.ok("RecordKnowledge", foreign);
  json short_vec = record("short", "Graph coloring", "Greedy coloring of graphs.");
  short_vec["embedding"] = {1.0, 0.0};
  short_vec["embedder"] = "engram-hash/1";  // the right embedder, the wrong size
  f.ok("RecordKnowledge", short_vec);
  Model m(f);
  m.sync();
  const embed::HashingEmbedder e;
  for (const auto& [id, text] : std::vector<std::pair<std::string, std::string>>{
           {"foreign", "Graph search\nBreadth first search over graphs."},
           {"short", "Graph coloring\nGreedy coloring of graphs."}}) {
    CAPTURE(id);
    CHECK((*m.get(id))["embedding"] == "embedder");
    auto stored = m.worker->store().get("vec/" + id);
    REQUIRE(stored);
    REQUIRE(stored->has_value());
    const std::vector<float> expected = e.embed(text);
    REQUIRE((*stored)->size() == expected.size() * 4);
    std::vector<float> got(expected.size());
    std::memcpy(got.data(), (*stored)->data(), (*stored)->size());  // little-endian host
    CHECK(got == expected);
  }
  CHECK(m.ids("graphs", Mode::semantic).size() == 2);
  auto meta = m.worker->store().get("meta/embedder");
  REQUIRE(meta);
  REQUIRE(meta->has_value());
  CHECK(
      json::parse(**meta) ==
      json(
          {{"name", "engram-hash"}, {"version", 1}, {"dimensions", 384}, {"id", "engram-hash/1"}}));
}

TEST_CASE("knowledge: a revision re-indexes and a retraction removes everywhere") {
  test::BusFixture f;
  seed(f);
  Model m(f);
  m.sync();
  REQUIRE(m.ids("transformers", Mode::keyword) == std::vector<std::string>{"attn"});
  const std::string old_text = "Transformers use self-attention to weigh tokens";
  const auto semantic_score = [&](const std::string& text) {
    for (const auto& h : m.hits(text, Mode::semantic)) {
      if (h.item["id"] == "attn") return *h.semantic_score;
    }
    return 0.0;
  };
  const double old_score = semantic_score(old_text);
  CHECK(old_score > 0.5);

  f.ok("ReviseKnowledge", {{"knowledge_id", "attn"},
                           {"title", "Recurrent networks"},
                           {"body", "LSTM cells carry state across timesteps."},
                           {"reason", "rewritten"}});
  m.sync();
  CHECK(m.ids("transformers", Mode::keyword).empty());
  CHECK(m.ids("lstm", Mode::keyword) == std::vector<std::string>{"attn"});
  CHECK(m.ids("timestep", Mode::keyword) == std::vector<std::string>{"attn"});  // stemmed
  {
    auto semantic = m.hits("LSTM cells carry state", Mode::semantic);
    REQUIRE_FALSE(semantic.empty());
    CHECK(semantic[0].item["id"] == "attn");
    CHECK(semantic_score(old_text) < old_score / 2);
  }
  auto attn = m.get("attn");
  REQUIRE(attn);
  CHECK((*attn)["revisions"] == 1);
  CHECK((*attn)["title"] == "Recurrent networks");
  CHECK((*attn)["updated_position"].get<uint64_t>() > (*attn)["created_position"].get<uint64_t>());

  // Tags only: the filter follows, the text and vector stay.
  f.ok("ReviseKnowledge", {{"knowledge_id", "attn"}, {"tags", {"rnn"}}, {"confidence", 0.9}});
  m.sync();
  CHECK(m.ids("lstm", Mode::keyword, {}, "nlp").empty());
  CHECK(m.ids("lstm", Mode::keyword, {}, "rnn") == std::vector<std::string>{"attn"});
  CHECK(m.ids("lstm", Mode::semantic, {}, "rnn").front() == "attn");
  CHECK((*m.get("attn"))["confidence"] == 0.9);
  CHECK((*m.get("attn"))["revisions"] == 2);

  f.ok("RetractKnowledge", {{"knowledge_id", "fold"}, {"reason", "wrong"}});
  m.sync();
  CHECK_FALSE(m.get("fold").has_value());
  CHECK(m.ids("protein", Mode::keyword) == std::vector<std::string>{"diet"});
  for (Mode mode : {Mode::semantic, Mode::hybrid}) {
    CHECK_FALSE(has(m.ids("Protein folding simulations", mode), "fold"));
  }
  auto vec = m.worker->store().get("vec/fold");
  REQUIRE(vec);
  CHECK_FALSE(vec->has_value());
}

TEST_CASE("knowledge: a restart, a lost index and a lost committed() all give the same answers") {
  test::BusFixture f;
  seed(f);
  const std::vector<std::pair<std::string, Mode>> queries = {
      {"protein", Mode::keyword},        {"protein", Mode::semantic},
      {"protein", Mode::hybrid},         {"transformers attention", Mode::hybrid},
      {"neural networks", Mode::hybrid}, {"pasta", Mode::keyword}};
  const auto answers = [&](const Model& m) {
    std::vector<std::vector<std::pair<std::string, double>>> out;
    for (const auto& [text, mode] : queries) {
      std::vector<std::pair<std::string, double>> one;
      for (const auto& h : m.hits(text, mode)) one.emplace_back(h.item["id"], h.score);
      out.push_back(one);
    }
    return out;
  };

  auto shared = std::make_shared<KnowledgeProjection>(hashing());
  auto wrapper = std::make_shared<DroppingCommitted>(shared);
  std::vector<std::vector<std::pair<std::string, double>>> before;
  {
    Model m(f, shared, wrapper);
    m.sync();
    before = answers(m);
    CHECK(before[0].size() == 2);

    // From here on the indexes never hear of the commits.
    wrapper->drop = true;
    f.ok("RecordKnowledge",
         record("neural", "Neural networks", "Neural networks learn weights by gradient descent."));
    f.ok("ReviseKnowledge",
         {{"knowledge_id", "diet"}, {"body", "Athletes eat rice after training."}});
    f.ok("RetractKnowledge", {{"knowledge_id", "attn"}, {"reason", "superseded"}});
    m.sync();
    CHECK(m.ids("pasta", Mode::keyword) == std::vector<std::string>{"diet"});  // stale
    m.worker->stop();
  }
  wrapper.reset();
  shared.reset();  // closes Xapian without recording the newer position

  const std::string store_name = "knowledge@v1";
  const std::filesystem::path xapian_dir = f.models->files_dir(store_name) / "xapian";
  {
    // The index says it is older than the store: the worker will refresh.
    auto store = f.models->store(store_name);
    REQUIRE(store);
    KnowledgeProjection p(hashing());
    auto at = p.open(**store, f.models->files_dir(store_name));
    REQUIRE(at);
    CHECK(*at < (*store)->checkpoint());
    CHECK(at->value() > 0);
    p.close(**store);
  }

  std::vector<std::vector<std::pair<std::string, double>>> after;
  {
    Model m(f);
    m.sync();
    CHECK(m.ids("pasta", Mode::keyword).empty());
    CHECK(m.ids("rice", Mode::keyword) == std::vector<std::string>{"diet"});
    CHECK(m.ids("gradient", Mode::keyword) == std::vector<std::string>{"neural"});
    CHECK(m.ids("transformers", Mode::keyword).empty());
    CHECK_FALSE(has(m.ids("transformers attention", Mode::hybrid), "attn"));
    CHECK(m.ids("neural networks", Mode::hybrid).front() == "neural");
    after = answers(m);
  }
  {
    // A plain restart answers the same.
    Model m(f);
    m.sync();
    CHECK(answers(m) == after);
  }
  {
    // So does a lost Xapian directory: rebuilt from the whole log.
    std::filesystem::remove_all(xapian_dir);
    Model m(f);
    m.sync();
    CHECK(std::filesystem::exists(xapian_dir));
    CHECK(answers(m) == after);
  }
  CHECK(before != after);
}

TEST_CASE("knowledge: the store is the same whatever the batch sizes") {
  test::BusFixture f;
  seed(f);
  f.ok("ReviseKnowledge", {{"knowledge_id", "attn"}, {"body", "Attention is all you need."}});
  f.ok("TransferKnowledge", {{"knowledge_id", "attn"}, {"to_agent", "a2"}});
  f.ok("RetractKnowledge", {{"knowledge_id", "diet"}, {"reason", "off topic"}});
  Model whole(f);
  whole.sync();
  projections::WorkerOptions one_by_one;
  one_by_one.max_batch_events = 1;
  one_by_one.store = "knowledge-scratch";
  Model single(f, one_by_one);
  single.sync();
  CHECK(dump(whole.worker->store()) == dump(single.worker->store()));
  CHECK(dump(whole.worker->store()).size() == 5);  // meta, 2 items, 2 vectors
}

TEST_CASE("knowledge: a changed embedder stops the worker and asks for a rebuild") {
  test::BusFixture f;
  seed(f);
  {
    Model m(f);
    m.sync();
  }
  auto p = std::make_shared<KnowledgeProjection>(hashing(64));
  auto w = projections::Worker::start(*f.log, *f.models, p);
  REQUIRE(w);
  CHECK_FALSE((*w)->wait_for(f.log->head().position, kWait));
  CHECK((*w)->stats().failed);
  CHECK((*w)->stats().failure.find("rebuild") != std::string::npos);
}

TEST_CASE("knowledge: query bounds and syntax errors are invalid_argument") {
  test::BusFixture f;
  seed(f);
  for (int i = 0; i < 12; ++i) {
    f.ok("RecordKnowledge", record("bulk" + std::to_string(i), "Protein note " + std::to_string(i),
                                   "More protein facts."));
  }
  {
    // Not open yet: no answer rather than a wrong one.
    KnowledgeProjection p(hashing());
    auto s = f.models->store("knowledge@v1");
    REQUIRE(s);
    KnowledgeQuery q;
    q.text = "protein";
    CHECK(projections::search_knowledge(p, **s, q).error().code == core::errc::not_found);
  }
  Model m(f);
  m.sync();
  const auto code = [&](KnowledgeQuery q) {
    auto r = m.search(q);
    return r ? core::errc::success : r.error().code;
  };
  KnowledgeQuery q;
  q.text = "protein";
  CHECK(code(q) == core::errc::success);
  for (Mode mode : {Mode::keyword, Mode::semantic, Mode::hybrid}) {
    CAPTURE(static_cast<int>(mode));
    KnowledgeQuery b = q;
    b.mode = mode;
    b.text = "";
    CHECK(code(b) == core::errc::invalid_argument);
    b.text = std::string(projections::kKnowledgeMaxTextBytes + 1, 'a');
    CHECK(code(b) == core::errc::invalid_argument);
    b.text = std::string(projections::kKnowledgeMaxTextBytes, 'a');
    CHECK(code(b) == core::errc::success);
    b.text = "protein";
    b.limit = 0;
    CHECK(code(b) == core::errc::invalid_argument);
    b.limit = projections::kKnowledgeMaxLimit + 1;
    CHECK(code(b) == core::errc::invalid_argument);
    b.limit = projections::kKnowledgeMaxLimit;
    CHECK(code(b) == core::errc::success);
    b.limit = 5;
    CHECK(m.search(b)->size() == 5);
    b.tag = std::string(projections::kKnowledgeMaxFilterBytes + 1, 't');
    CHECK(code(b) == core::errc::invalid_argument);
    b.tag = std::string(projections::kKnowledgeMaxFilterBytes, 't');
    CHECK(code(b) == core::errc::success);
    CHECK(m.search(b)->empty());
  }
  for (const char* bad : {"protein AND", "AND OR", "NOT", "a AND (b OR"}) {
    CAPTURE(bad);
    KnowledgeQuery b = q;
    b.text = bad;
    b.mode = Mode::keyword;
    CHECK(code(b) == core::errc::invalid_argument);
    b.mode = Mode::hybrid;
    CHECK(code(b) == core::errc::invalid_argument);
    b.mode = Mode::semantic;  // no syntax there
    CHECK(code(b) == core::errc::success);
  }
  CHECK(m.ids("protein", Mode::keyword, {}, {}, {}, 100).size() == 14);
}

TEST_CASE("knowledge: queries on other threads while the worker indexes see no errors") {
  test::BusFixture f;
  f.ok("RecordKnowledge", record("k0", "Protein note 0", "Protein body."));
  Model m(f);
  m.sync();
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::atomic<int> queries{0};
  std::vector<std::thread> readers;
  for (Mode mode : {Mode::keyword, Mode::hybrid}) {
    readers.emplace_back([&, mode] {
      KnowledgeQuery q;
      q.text = "protein note";
      q.mode = mode;
      while (!done.load()) {
        auto r = m.search(q);
        if (!r || r->empty()) failures.fetch_add(1);
        queries.fetch_add(1);
      }
    });
  }
  for (int i = 1; i < 20; ++i) {
    const std::string n = std::to_string(i);
    f.ok("RecordKnowledge", record("k" + n, "Protein note " + n, "Protein body " + n + "."));
    if (i % 5 == 0) f.ok("RetractKnowledge", {{"knowledge_id", "k" + n}, {"reason", "churn"}});
  }
  m.sync();
  done = true;
  for (auto& t : readers) t.join();
  CHECK(failures.load() == 0);
  CHECK(queries.load() > 0);
  CHECK(m.ids("protein", Mode::keyword, {}, {}, {}, 100).size() == 17);
  CHECK(m.ids("protein", Mode::semantic, {}, {}, {}, 100).size() == 17);
}
