#pragma once

// Metrics in the Prometheus text exposition format (version 0.0.4).
//
// Counters and histograms are lock-free to update once obtained; looking one
// up by labels takes the registry's mutex, so hot paths keep the reference.
// Families and label sets are created on first use and live as long as the
// registry. Callback metrics are read at render time (values other modules
// already count, such as LogStats).

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace engram::core::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void add(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Cumulative buckets are computed at render time; each observation touches
// one bucket, the count and the sum.
struct HistogramSnapshot {
  std::vector<double> upper_bounds;  // ascending, +Inf implied
  std::vector<uint64_t> counts;      // per bucket (not cumulative); size upper_bounds + 1
  double sum = 0;
  uint64_t count = 0;
};

class Histogram {
 public:
  static constexpr size_t kMaxBuckets = 32;
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  HistogramSnapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::array<std::atomic<uint64_t>, kMaxBuckets + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Bucket layouts used across engram.
std::vector<double> latency_buckets_seconds();  // 100 µs .. 10 s
std::vector<double> size_buckets();             // 1 .. 4096, powers of two

class Registry {
 public:
  // At most this many label sets per family; later ones share one overflow
  // series labelled {overflow="true"}, so bad input cannot grow memory.
  static constexpr size_t kMaxSeriesPerFamily = 1000;

  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram& histogram(std::string_view name, std::string_view help, const Labels& labels,
                       const std::vector<double>& upper_bounds);
  // Values read when rendering.
  void gauge_fn(std::string_view name, std::string_view help, std::function<double()> fn);
  // A labelled series of a callback gauge family (one call per label set).
  void gauge_fn(std::string_view name, std::string_view help, const Labels& labels,
                std::function<double()> fn);
  void counter_fn(std::string_view name, std::string_view help, std::function<double()> fn);
  void histogram_fn(std::string_view name, std::string_view help,
                    std::function<HistogramSnapshot()> fn);

  std::string render() const;

 private:
  enum class Type { counter, gauge, histogram };
  struct Family {
    Type type;
    std::string help;
    std::map<std::string, std::unique_ptr<Counter>> counters;  // by rendered label set
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
    std::function<double()> value_fn;
    std::map<std::string, std::function<double()>> labelled_fns;  // by rendered label set
    std::function<HistogramSnapshot()> histogram_fn;
  };
  Family& family(std::string_view name, Type type, std::string_view help);

  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;
};

}  // namespace engram::core::metrics
