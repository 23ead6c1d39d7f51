#include "core/time.h"

#include <fmt/format.h>

#include <charconv>
#include <ctime>

#include "core/assert.h"

namespace engram::core {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

unsigned days_in_month(unsigned year, unsigned month) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return kDays[month - 1] + (month == 2 && leap ? 1 : 0);
}

Error refuse(std::string_view why) {
  return make_error(errc::invalid_argument, fmt::format("{}; {}", why, kRfc3339Help));
}

// Reads the text left to right; each field must have its exact digits.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}

  bool digits(size_t n, unsigned& out) {
    out = 0;
    for (size_t i = 0; i < n; ++i, ++at_) {
      if (at_ >= s_.size() || s_[at_] < '0' || s_[at_] > '9') return false;
      out = out * 10 + static_cast<unsigned>(s_[at_] - '0');
    }
    return true;
  }
  // One of the characters in `any`; returns it, or 0.
  char one_of(std::string_view any) {
    if (at_ >= s_.size() || any.find(s_[at_]) == std::string_view::npos) return 0;
    return s_[at_++];
  }
  bool at_digit() const { return at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9'; }
  char next() { return s_[at_++]; }
  bool done() const { return at_ == s_.size(); }

 private:
  std::string_view s_;
  size_t at_ = 0;
};

}  // namespace

std::string format_rfc3339_ns(int64_t unix_ns) {
  // Floor division, so times before 1970 get a non-negative fraction.
  int64_t secs = unix_ns / kNsPerSecond;
  int64_t nanos = unix_ns % kNsPerSecond;
  if (nanos < 0) {
    secs -= 1;
    nanos += kNsPerSecond;
  }
  const auto t = static_cast<std::time_t>(secs);
  std::tm tm{};
  ENGRAM_ASSERT(gmtime_r(&t, &tm) != nullptr);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, nanos);
}

result<int64_t> parse_rfc3339_ns(std::string_view text) {
  if (text.empty()) return refuse("the time is empty");
  if (text.size() > kMaxTimeTextBytes) {
    return refuse(fmt::format("the time is longer than {} bytes", kMaxTimeTextBytes));
  }
  Reader r(text);
  unsigned year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!r.digits(4, year) || !r.one_of("-") || !r.digits(2, month) || !r.one_of("-") ||
      !r.digits(2, day)) {
    return refuse("the date is not YYYY-MM-DD");
  }
  if (!r.one_of("Tt")) return refuse("the date and the time are not separated by 'T'");
  if (!r.digits(2, hour) || !r.one_of(":") || !r.digits(2, minute) || !r.one_of(":") ||
      !r.digits(2, second)) {
    return refuse("the time of day is not hh:mm:ss");
  }
  int64_t fraction_ns = 0;
  if (r.one_of(".")) {
    if (!r.at_digit()) return refuse("the '.' is not followed by a digit");
    size_t n = 0;
    for (; r.at_digit(); ++n) {
      const int64_t digit = r.next() - '0';
      if (n < 9) fraction_ns = fraction_ns * 10 + digit;  // finer digits are cut off
    }
    for (; n < 9; ++n) fraction_ns *= 10;
  }
  int64_t offset_s = 0;
  if (const char sign = r.one_of("Zz+-"); sign == '+' || sign == '-') {
    unsigned off_hour = 0, off_minute = 0;
    if (!r.digits(2, off_hour) || !r.one_of(":") || !r.digits(2, off_minute)) {
      return refuse("the offset is not Z, +hh:mm or -hh:mm");
    }
    if (off_hour > 23 || off_minute > 59) {
      return refuse(fmt::format("the offset {}{:02}:{:02} is out of range", sign, off_hour,
                                off_minute));
    }
    offset_s = (sign == '+' ? 1 : -1) * static_cast<int64_t>(off_hour * 3600 + off_minute * 60);
  } else if (sign == 0) {
    return refuse("the time has no offset (Z, +hh:mm or -hh:mm)");
  }
  if (!r.done()) return refuse("there is text after the offset");

  if (month < 1 || month > 12) return refuse(fmt::format("month {:02} is not 01-12", month));
  if (day < 1 || day > days_in_month(year, month)) {
    return refuse(fmt::format("{:04}-{:02} has no day {:02}", year, month, day));
  }
  if (hour > 23) return refuse(fmt::format("hour {:02} is not 00-23", hour));
  if (minute > 59) return refuse(fmt::format("minute {:02} is not 00-59", minute));
  if (second == 60) return refuse("a leap second (:60) has no Unix time");
  if (second > 59) return refuse(fmt::format("second {:02} is not 00-59", second));

  int64_t secs = days_from_civil(year, month, day) * 86'400 + hour * 3600 + minute * 60 + second -
                 offset_s;
  // secs * 1e9 + fraction without overflowing on the way to INT64_MIN.
  if (secs < 0 && fraction_ns > 0) {
    secs += 1;
    fraction_ns -= kNsPerSecond;
  }
  int64_t ns = 0;
  if (__builtin_mul_overflow(secs, kNsPerSecond, &ns) ||
      __builtin_add_overflow(ns, fraction_ns, &ns)) {
    return refuse(
        "the time is outside what int64 nanoseconds hold (1677-09-21T00:12:43.145224192Z to "
        "2262-04-11T23:47:16.854775807Z)");
  }
  return ns;
}

result<int64_t> parse_time_bound_ns(std::string_view text) {
  if (!text.empty() && text.size() <= kMaxTimeTextBytes &&
      text.find_first_not_of("-0123456789") == std::string_view::npos) {
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc::result_out_of_range) {
      return make_error(errc::invalid_argument,
                        "Unix nanoseconds must be within -9223372036854775808 and "
                        "9223372036854775807");
    }
    if (ec == std::errc() && end == text.data() + text.size()) return v;
  }
  auto t = parse_rfc3339_ns(text);
  if (!t) {
    return make_error(errc::invalid_argument,
                      "neither integer Unix nanoseconds nor an RFC 3339 time: " + t.error().message);
  }
  return t;
}

}  // namespace engram::core
