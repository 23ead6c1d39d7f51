// Crash-test child: appends from 16 threads to the log in argv[1] until it
// is killed (or 60 s pass), writing one line "<event id> <position>" to
// stdout for every event whose append was acknowledged. Each append's lines
// go out in one write() below PIPE_BUF, so a kill never splits them.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"

using namespace engram::core;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  auto log = Log::open(argv[1]);
  if (!log) {
    std::fprintf(stderr, "open: %s\n", log.error().to_string().c_str());
    return 2;
  }
  constexpr int kThreads = 16;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) * 7919u + static_cast<unsigned>(getpid()));
      for (uint64_t i = 0; std::chrono::steady_clock::now() < deadline; ++i) {
        std::vector<EventData> events(1 + rng() % 3);
        for (auto& e : events) {
          e.id = Uuid::v7_now();
          e.type = "Crashed";
          e.payload = std::string(16 + rng() % 200, static_cast<char>('a' + t));
        }
        const std::string stream = "crash-" + std::to_string(t) + "-" + std::to_string(i % 4);
        auto r = (*log)->append(stream, ExpectedVersion::any(), events);
        if (!r) {
          if (r.error().code == errc::overloaded) continue;
          std::fprintf(stderr, "append: %s\n", r.error().to_string().c_str());
          std::_Exit(3);
        }
        std::string lines;
        for (size_t k = 0; k < events.size(); ++k) {
          lines += events[k].id.to_string() + " " + std::to_string(r->first.value() + k) + "\n";
        }
        if (write(STDOUT_FILENO, lines.data(), lines.size()) !=
            static_cast<ssize_t>(lines.size())) {
          std::_Exit(4);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  return 0;
}
