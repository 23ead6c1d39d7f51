#include "core/metrics.h"

#include <fmt/format.h>

#include <cmath>

#include "core/assert.h"

namespace engram::core::metrics {
namespace {

std::string escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string render_labels(const Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty()) out += ',';
    out += fmt::format("{}=\"{}\"", k, escape_label(v));
  }
  return out;
}

std::string format_value(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);
}

std::string join_labels(const std::string& labels, const std::string& extra) {
  if (labels.empty() && extra.empty()) return "";
  if (labels.empty()) return "{" + extra + "}";
  if (extra.empty()) return "{" + labels + "}";
  return "{" + labels + "," + extra + "}";
}

void render_histogram(std::string& out, const std::string& name, const std::string& labels,
                      const HistogramSnapshot& h) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.upper_bounds.size(); ++i) {
    cumulative += h.counts[i];
    out += fmt::format(
        "{}_bucket{} {}\n", name,
        join_labels(labels, fmt::format("le=\"{}\"", format_value(h.upper_bounds[i]))), cumulative);
  }
  out += fmt::format("{}_bucket{} {}\n", name, join_labels(labels, "le=\"+Inf\""), h.count);
  out += fmt::format("{}_sum{} {}\n", name, join_labels(labels, ""), format_value(h.sum));
  out += fmt::format("{}_count{} {}\n", name, join_labels(labels, ""), h.count);
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  ENGRAM_ASSERT(bounds_.size() <= kMaxBuckets);
  for (size_t i = 1; i < bounds_.size(); ++i) ENGRAM_ASSERT(bounds_[i - 1] < bounds_[i]);
}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

HistogramSnapshot Histogram::snapshot() const {
  HistogramSnapshot s;
  s.upper_bounds = bounds_;
  s.counts.resize(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    s.counts[i] = buckets_[i].load(std::memory_order_relaxed);
    s.count += s.counts[i];  // consistent with the buckets even while observing
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> latency_buckets_seconds() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

std::vector<double> size_buckets() {
  std::vector<double> b;
  for (double v = 1; v <= 4096; v *= 2) b.push_back(v);
  return b;
}

Registry::Family& Registry::family(std::string_view name, Type type, std::string_view help) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{type, std::string(help), {}, {}, {}, {}, {}})
             .first;
  }
  ENGRAM_ASSERT(it->second.type == type);
  return it->second;
}

Counter& Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(mu_);
  Family& f = family(name, Type::counter, help);
  std::string key = render_labels(labels);
  auto it = f.counters.find(key);
  if (it != f.counters.end()) return *it->second;
  if (f.counters.size() >= kMaxSeriesPerFamily) key = "overflow=\"true\"";
  auto& slot = f.counters[key];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help, const Labels& labels,
                               const std::vector<double>& upper_bounds) {
  std::lock_guard lock(mu_);
  Family& f = family(name, Type::histogram, help);
  std::string key = render_labels(labels);
  auto it = f.histograms.find(key);
  if (it != f.histograms.end()) return *it->second;
  if (f.histograms.size() >= kMaxSeriesPerFamily) key = "overflow=\"true\"";
  auto& slot = f.histograms[key];
  if (!slot) slot = std::make_unique<Histogram>(upper_bounds);
  return *slot;
}

void Registry::gauge_fn(std::string_view name, std::string_view help, std::function<double()> fn) {
  std::lock_guard lock(mu_);
  family(name, Type::gauge, help).value_fn = std::move(fn);
}

void Registry::gauge_fn(std::string_view name, std::string_view help, const Labels& labels,
                        std::function<double()> fn) {
  std::lock_guard lock(mu_);
  Family& f = family(name, Type::gauge, help);
  if (f.labelled_fns.size() >= kMaxSeriesPerFamily) return;
  f.labelled_fns[render_labels(labels)] = std::move(fn);
}

void Registry::counter_fn(std::string_view name, std::string_view help,
                          std::function<double()> fn) {
  std::lock_guard lock(mu_);
  family(name, Type::counter, help).value_fn = std::move(fn);
}

void Registry::histogram_fn(std::string_view name, std::string_view help,
                            std::function<HistogramSnapshot()> fn) {
  std::lock_guard lock(mu_);
  family(name, Type::histogram, help).histogram_fn = std::move(fn);
}

std::string Registry::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    const char* type = f.type == Type::counter ? "counter"
                       : f.type == Type::gauge ? "gauge"
                                               : "histogram";
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, f.help, name, type);
    if (f.value_fn) out += fmt::format("{} {}\n", name, format_value(f.value_fn()));
    for (const auto& [labels, fn] : f.labelled_fns) {
      out += fmt::format("{}{} {}\n", name, join_labels(labels, ""), format_value(fn()));
    }
    if (f.histogram_fn) render_histogram(out, name, "", f.histogram_fn());
    for (const auto& [labels, c] : f.counters) {
      out += fmt::format("{}{} {}\n", name, join_labels(labels, ""), c->value());
    }
    for (const auto& [labels, h] : f.histograms) render_histogram(out, name, labels, h->snapshot());
  }
  return out;
}

}  // namespace engram::core::metrics
