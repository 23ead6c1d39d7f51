#include "adapters/http/router.h"

#include <algorithm>
#include <charconv>

#include "core/assert.h"

namespace engram::http {
namespace {

// The path's segments after its leading '/', each with where it starts in
// the path (a parameter taking the rest starts there).
struct PathSegments {
  std::vector<std::string_view> parts;
  std::vector<size_t> starts;
};

PathSegments split_path(std::string_view path) {
  PathSegments out;
  size_t at = 1;
  for (;;) {
    const size_t slash = path.find('/', at);
    out.starts.push_back(at);
    out.parts.push_back(path.substr(at, slash == std::string_view::npos ? slash : slash - at));
    if (slash == std::string_view::npos) break;
    at = slash + 1;
  }
  return out;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc() || p != s.data() + i + 3 || v == 0) return std::nullopt;
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

std::optional<QueryParams> parse_query(std::string_view query) {
  QueryParams out;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    auto k = percent_decode(pair.substr(0, eq));
    auto v = percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!k || !v) return std::nullopt;
    out.emplace_back(std::move(*k), std::move(*v));
  }
  return out;
}

PathTemplate::PathTemplate(std::string_view text) : text_(text) {
  ENGRAM_ASSERT_MSG(text.size() > 1 && text[0] == '/', "a template starts with '/'");
  const PathSegments split = split_path(text);
  for (size_t i = 0; i < split.parts.size(); ++i) {
    const std::string_view part = split.parts[i];
    ENGRAM_ASSERT_MSG(!part.empty(), "a template has no empty segment");
    if (part.front() != '{') {
      ENGRAM_ASSERT_MSG(part.find_first_of("{}%") == std::string_view::npos,
                        "a literal segment holds no braces or escapes");
      segments_.push_back({Segment::Kind::literal, std::string(part)});
      continue;
    }
    ENGRAM_ASSERT_MSG(part.size() > 2 && part.back() == '}', "a parameter is {name}");
    std::string name(part.substr(1, part.size() - 2));
    ENGRAM_ASSERT_MSG(std::find(names_.begin(), names_.end(), name) == names_.end(),
                      "a parameter appears once per template");
    const bool last = i + 1 == split.parts.size();
    segments_.push_back({last ? Segment::Kind::rest : Segment::Kind::param, name});
    names_.push_back(std::move(name));
  }
}

std::optional<std::vector<std::string_view>> PathTemplate::match(std::string_view path) const {
  if (path.empty() || path[0] != '/') return std::nullopt;
  const PathSegments split = split_path(path);
  std::vector<std::string_view> values;
  for (size_t i = 0; i < segments_.size(); ++i) {
    if (i >= split.parts.size()) return std::nullopt;
    const Segment& s = segments_[i];
    if (s.kind == Segment::Kind::rest) {
      const std::string_view rest = path.substr(split.starts[i]);
      if (rest.empty()) return std::nullopt;
      values.push_back(rest);
      return values;
    }
    const std::string_view part = split.parts[i];
    if (s.kind == Segment::Kind::literal ? part != s.text : part.empty()) return std::nullopt;
    if (s.kind == Segment::Kind::param) values.push_back(part);
  }
  if (split.parts.size() != segments_.size()) return std::nullopt;
  return values;
}

bool PathTemplate::more_specific_than(const PathTemplate& other) const {
  const size_t n = std::min(segments_.size(), other.segments_.size());
  for (size_t i = 0; i < n; ++i) {
    const auto a = segments_[i].kind, b = other.segments_[i].kind;
    if (a != b) return a < b;  // literal < param < rest
  }
  return segments_.size() > other.segments_.size();
}

Router::Router(const std::vector<RouteKey>& routes) {
  for (size_t i = 0; i < routes.size(); ++i) {
    auto it = std::find_if(resources_.begin(), resources_.end(),
                           [&](const Resource& r) { return r.path.text() == routes[i].path; });
    if (it == resources_.end()) {
      resources_.push_back(Resource{PathTemplate(routes[i].path), {}});
      it = resources_.end() - 1;
    }
    for (const auto& [method, index] : it->methods) {
      ENGRAM_ASSERT_MSG(method != routes[i].method, "a (method, template) pair is routed once");
    }
    it->methods.emplace_back(routes[i].method, i);
  }
  std::stable_sort(resources_.begin(), resources_.end(), [](const Resource& a, const Resource& b) {
    return a.path.more_specific_than(b.path);
  });
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
  Match m;
  for (const Resource& r : resources_) {
    auto raw = r.path.match(path);
    if (!raw) continue;
    m.path_template = &r.path.text();
    const auto found = std::find_if(r.methods.begin(), r.methods.end(),
                                    [&](const auto& entry) { return entry.first == method; });
    if (found == r.methods.end()) {
      m.outcome = Match::Outcome::method_not_allowed;
      for (const auto& [name, index] : r.methods) {
        if (!m.allow.empty()) m.allow += ", ";
        m.allow += name;
      }
      return m;
    }
    for (size_t i = 0; i < raw->size(); ++i) {
      auto decoded = percent_decode((*raw)[i]);
      if (!decoded) {
        m.outcome = Match::Outcome::bad_param;
        m.bad_param = r.path.param_names()[i];
        m.params.clear();
        return m;
      }
      m.params.emplace_back(r.path.param_names()[i], std::move(*decoded));
    }
    m.outcome = Match::Outcome::found;
    m.route = found->second;
    return m;
  }
  return m;
}

}  // namespace engram::http
