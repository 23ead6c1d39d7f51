#pragma once

// Matching requests to routes: path templates, percent-decoding, query
// strings. Knows methods and templates only, not what a route does (the
// table in routes.h pairs each with its roles, parameters and handler).
//
// Templates
// - "/v1/patterns/{id}/similar": segments after a leading '/', each a
//   literal or a parameter "{name}". A parameter matches one non-empty
//   segment, except one that ends the template: it takes the rest of the
//   path, '/' included (stream names may hold '/').
// - Literals compare with the raw path; parameters are percent-decoded
//   once, after matching. A malformed escape (or an encoded NUL) in a
//   parameter is a bad request naming the parameter, never a different
//   route.
// - When several templates match a path, the most specific wins: compared
//   segment by segment, a literal before a parameter, a one-segment
//   parameter before one taking the rest. Routes of one template differ by
//   method; a path whose template lacks the method is 405 with the
//   template's methods (Allow), a path no template matches 404.
// - A malformed template, or one (method, template) given twice, is a
//   programmer error (ENGRAM_ASSERT).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace engram::http {

// %XX decoding; nullopt on a malformed escape or an encoded NUL. '+' stays
// '+' (paths and engram's query strings are not form-encoded).
std::optional<std::string> percent_decode(std::string_view s);

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// "a=1&b=x%20y" as decoded (name, value) pairs in order; empty pairs are
// skipped, a pair without '=' has an empty value. nullopt when an escape is
// malformed.
std::optional<QueryParams> parse_query(std::string_view query);

class PathTemplate {
 public:
  explicit PathTemplate(std::string_view text);

  const std::string& text() const { return text_; }
  const std::vector<std::string>& param_names() const { return names_; }
  // The raw (undecoded) parameter values in template order, or nullopt.
  std::optional<std::vector<std::string_view>> match(std::string_view path) const;
  // True when this template wins over `other` for a path both match.
  bool more_specific_than(const PathTemplate& other) const;

 private:
  struct Segment {
    enum class Kind { literal, param, rest } kind;
    std::string text;  // the literal, or the parameter's name
  };
  std::string text_;
  std::vector<Segment> segments_;
  std::vector<std::string> names_;
};

struct RouteKey {
  std::string method;  // "GET"
  std::string path;    // a template
};

class Router {
 public:
  explicit Router(const std::vector<RouteKey>& routes);

  struct Match {
    enum class Outcome { found, not_found, method_not_allowed, bad_param };
    Outcome outcome = Outcome::not_found;
    // found: the index of the route in the list given to the constructor.
    size_t route = 0;
    // Every outcome but not_found: the template that matched.
    const std::string* path_template = nullptr;
    // method_not_allowed: the template's methods, "GET, POST".
    std::string allow;
    // found: the decoded parameters, by name.
    std::vector<std::pair<std::string, std::string>> params;
    // bad_param: the parameter that failed to decode.
    std::string bad_param;
  };
  Match match(std::string_view method, std::string_view path) const;

  // The templates, most specific first, each with its methods in the order given.
  struct Resource {
    PathTemplate path;
    std::vector<std::pair<std::string, size_t>> methods;  // (method, route index)
  };
  const std::vector<Resource>& resources() const { return resources_; }

 private:
  std::vector<Resource> resources_;
};

}  // namespace engram::http
