#include "core/metrics.h"

#include <doctest/doctest.h>

#include <string>

using namespace engram::core::metrics;

TEST_CASE("metrics: counters, callbacks and histograms render in the text format") {
  Registry r;
  r.counter("engram_x_total", "Things.", {{"route", "/v1/a"}, {"status", "200"}}).add(3);
  r.counter("engram_x_total", "Things.", {{"route", "/v1/a"}, {"status", "200"}}).add();
  r.counter("engram_x_total", "Things.", {{"route", "quote\"d"}, {"status", "500"}}).add();
  r.gauge_fn("engram_depth", "Depth.", [] { return 7.0; });
  r.gauge_fn("engram_lag", "Lag.", {{"projection", "catalog"}}, [] { return 3.0; });
  Histogram& h = r.histogram("engram_lat_seconds", "Latency.", {{"route", "/v1/a"}}, {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  const std::string text = r.render();
  CHECK(text.find("# TYPE engram_x_total counter\n") != std::string::npos);
  CHECK(text.find("engram_x_total{route=\"/v1/a\",status=\"200\"} 4\n") != std::string::npos);
  CHECK(text.find("engram_x_total{route=\"quote\\\"d\",status=\"500\"} 1\n") != std::string::npos);
  CHECK(text.find("# TYPE engram_depth gauge\nengram_depth 7\n") != std::string::npos);
  CHECK(text.find("engram_lag{projection=\"catalog\"} 3\n") != std::string::npos);
  CHECK(text.find("engram_lat_seconds_bucket{route=\"/v1/a\",le=\"0.1\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("engram_lat_seconds_bucket{route=\"/v1/a\",le=\"1\"} 2\n") != std::string::npos);
  CHECK(text.find("engram_lat_seconds_bucket{route=\"/v1/a\",le=\"+Inf\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("engram_lat_seconds_count{route=\"/v1/a\"} 3\n") != std::string::npos);
  CHECK(text.find("engram_lat_seconds_sum{route=\"/v1/a\"} 5.55\n") != std::string::npos);
}

TEST_CASE("metrics: label sets per family are bounded") {
  Registry r;
  for (size_t i = 0; i < Registry::kMaxSeriesPerFamily + 10; ++i) {
    r.counter("engram_y_total", "Y.", {{"k", std::to_string(i)}}).add();
  }
  const std::string text = r.render();
  CHECK(text.find("engram_y_total{overflow=\"true\"} 10\n") != std::string::npos);
}
