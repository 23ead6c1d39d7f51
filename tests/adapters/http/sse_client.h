#pragma once

// A Server-Sent Events reader for the live-feed tests: an SSE parser, and a
// raw loopback-socket client that reads a chunked text/event-stream body
// incrementally with a timeout (tests/support/http_client.h wants a
// Content-Length, which a stream never has). Independent of the server's
// HTTP library, like HttpClient.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/http_client.h"

namespace engram::test {

// One SSE block: an event (id, event, data) or a comment (a heartbeat).
struct SseMessage {
  std::string id;
  std::string event;
  std::string data;
  std::string comment;
  bool is_comment() const { return id.empty() && event.empty() && data.empty(); }
};

// Takes every complete block ("...\n\n") off the front of `buffer`.
inline std::vector<SseMessage> parse_sse(std::string& buffer) {
  std::vector<SseMessage> out;
  size_t end;
  while ((end = buffer.find("\n\n")) != std::string::npos) {
    const std::string block = buffer.substr(0, end);
    buffer.erase(0, end + 2);
    SseMessage m;
    size_t pos = 0;
    while (pos <= block.size()) {
      size_t nl = block.find('\n', pos);
      if (nl == std::string::npos) nl = block.size();
      const std::string line = block.substr(pos, nl - pos);
      pos = nl + 1;
      const size_t colon = line.find(':');
      const std::string field = line.substr(0, colon);
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
      if (field.empty()) {
        m.comment = value;
      } else if (field == "id") {
        m.id = value;
      } else if (field == "event") {
        m.event = value;
      } else if (field == "data") {
        if (!m.data.empty()) m.data += '\n';
        m.data += value;
      }
    }
    out.push_back(std::move(m));
  }
  return out;
}

class SseClient {
 public:
  explicit SseClient(uint16_t port) : port_(port) {}
  ~SseClient() { close(); }
  SseClient(const SseClient&) = delete;
  SseClient& operator=(const SseClient&) = delete;

  // Sends `GET target` and reads the response head (within timeout_ms).
  // Returns the status, 0 when none came.
  int open(const std::string& target, std::vector<std::pair<std::string, std::string>> headers,
           int timeout_ms = 10'000) {
    close();
    raw_.clear();
    text_.clear();
    queue_.clear();
    headers_.clear();
    ended_ = false;
    clean_end_ = false;
    fd_ = connect_loopback(port_);
    if (fd_ < 0) return 0;
    std::string req =
        "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n";
    for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
    req += "\r\n";
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      return 0;
    }
    const auto deadline = now() + std::chrono::milliseconds(timeout_ms);
    size_t head_end;
    while ((head_end = raw_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(deadline)) return 0;
    }
    const std::string head = raw_.substr(0, head_end);
    raw_.erase(0, head_end + 4);
    return parse_response_head(head, headers_);
  }

  std::string header(const std::string& lower) const {
    auto it = headers_.find(lower);
    return it == headers_.end() ? std::string() : it->second;
  }

  // The next block within timeout_ms; nullopt on timeout or when the body
  // ended (ended() tells which).
  std::optional<SseMessage> next(int timeout_ms) {
    const auto deadline = now() + std::chrono::milliseconds(timeout_ms);
    while (queue_.empty()) {
      if (ended_) return std::nullopt;
      if (!decode_chunks()) {
        if (!fill(deadline)) return std::nullopt;
        continue;
      }
      for (auto& m : parse_sse(text_)) queue_.push_back(std::move(m));
    }
    SseMessage m = std::move(queue_.front());
    queue_.pop_front();
    return m;
  }

  // The next event, skipping comments.
  std::optional<SseMessage> next_event(int timeout_ms) {
    const auto deadline = now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now());
      auto m = next(static_cast<int>(std::max<int64_t>(0, left.count())));
      if (!m || !m->is_comment()) return m;
    }
  }

  // The terminating chunk arrived (a clean end) — or the connection closed
  // without it (clean_end() false).
  bool ended() const { return ended_; }
  bool clean_end() const { return clean_end_; }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  static std::chrono::steady_clock::time_point now() { return std::chrono::steady_clock::now(); }

  // Moves complete chunks from raw_ to text_; false when none is complete.
  bool decode_chunks() {
    bool any = false;
    while (true) {
      const size_t line_end = raw_.find("\r\n");
      if (line_end == std::string::npos) return any;
      const size_t size = std::stoul(raw_.substr(0, line_end), nullptr, 16);
      if (size == 0) {
        ended_ = true;
        clean_end_ = true;
        return true;
      }
      if (raw_.size() < line_end + 2 + size + 2) return any;
      text_ += raw_.substr(line_end + 2, size);
      raw_.erase(0, line_end + 2 + size + 2);
      any = true;
    }
  }

  bool fill(std::chrono::steady_clock::time_point deadline) {
    if (fd_ < 0) {
      ended_ = true;
      return false;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now());
    pollfd p{fd_, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char tmp[65536];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) {
      ended_ = true;
      close();
      return false;
    }
    raw_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  uint16_t port_;
  int fd_ = -1;
  std::string raw_;   // bytes as received (chunked)
  std::string text_;  // the decoded body not yet parsed into blocks
  std::deque<SseMessage> queue_;
  std::map<std::string, std::string> headers_;
  bool ended_ = false;
  bool clean_end_ = false;
};

}  // namespace engram::test
