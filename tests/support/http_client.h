#pragma once

// A small blocking HTTP/1.1 client over a loopback TCP socket, independent of
// the server's HTTP library so tests do not share its bugs. Responses must
// carry Content-Length (engram's always do).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace engram::test {

// A TCP connection to 127.0.0.1:port with Nagle off; -1 on failure.
inline int connect_loopback(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The status of a response head (the bytes before its blank line), 0 when
// the status line is malformed; its headers go to `headers`, names in lower
// case.
inline int parse_response_head(const std::string& head,
                               std::map<std::string, std::string>& headers) {
  const size_t line_end = head.find("\r\n");
  const std::string status_line = head.substr(0, line_end);
  if (status_line.size() < 12) return 0;
  const int status = std::stoi(status_line.substr(9, 3));
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    if (e == std::string::npos) e = head.size();
    const std::string line = head.substr(pos, e - pos);
    const size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string k = line.substr(0, colon);
      std::transform(k.begin(), k.end(), k.begin(), ::tolower);
      std::string v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(' '));
      headers[k] = v;
    }
    pos = e + 2;
  }
  return status;
}

struct HttpResponse {
  int status = 0;                              // 0: no response (connection closed or timed out)
  std::map<std::string, std::string> headers;  // names lower-case
  std::string body;
  std::string header(const std::string& lower) const {
    auto it = headers.find(lower);
    return it == headers.end() ? std::string() : it->second;
  }
};

class HttpClient {
 public:
  explicit HttpClient(uint16_t port, int timeout_ms = 10'000)
      : port_(port), timeout_ms_(timeout_ms) {}
  ~HttpClient() { close(); }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  bool connect() {
    close();
    fd_ = connect_loopback(port_);
    if (fd_ < 0) return false;
    buf_.clear();
    return true;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool connected() const { return fd_ >= 0; }

  // Sends raw bytes (for malformed and slow requests).
  bool send_raw(const std::string& bytes) {
    if (fd_ < 0 && !connect()) return false;
    size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  HttpResponse request(const std::string& method, const std::string& target,
                       const std::string& body = "",
                       std::vector<std::pair<std::string, std::string>> headers = {}) {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    bool has_ct = false;
    for (const auto& [k, v] : headers) {
      req += k + ": " + v + "\r\n";
      std::string lk = k;
      std::transform(lk.begin(), lk.end(), lk.begin(), ::tolower);
      if (lk == "content-type") has_ct = true;
    }
    if (!body.empty() && !has_ct) req += "Content-Type: application/json\r\n";
    if (!body.empty() || method == "POST")
      req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n" + body;
    if (!send_raw(req)) {
      // A keep-alive connection the server closed: one fresh attempt.
      if (!connect() || !send_raw(req)) return {};
    }
    return read_response();
  }

  HttpResponse read_response() {
    HttpResponse r;
    size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    const std::string head = buf_.substr(0, header_end);
    buf_.erase(0, header_end + 4);
    r.status = parse_response_head(head, r.headers);
    if (r.status == 0) return r;
    const size_t len =
        r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    while (buf_.size() < len) {
      if (!fill()) {
        r.status = 0;
        return r;
      }
    }
    r.body = buf_.substr(0, len);
    buf_.erase(0, len);
    if (r.header("connection") == "close") close();
    return r;
  }

  // True when the server closed the connection within timeout_ms.
  bool closed_by_peer(int timeout_ms) {
    if (fd_ < 0) return true;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    char c;
    return ::recv(fd_, &c, 1, MSG_PEEK) <= 0;
  }

 private:
  bool fill() {
    pollfd p{fd_, POLLIN, 0};
    if (fd_ < 0 || ::poll(&p, 1, timeout_ms_) <= 0) return false;
    char tmp[65536];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) {
      close();
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  uint16_t port_;
  int timeout_ms_;
  int fd_ = -1;
  std::string buf_;
};

}  // namespace engram::test
