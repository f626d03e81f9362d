#include "store/table.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>

namespace apx::store {

std::string_view ColumnTypeName(ColumnType type) {
  switch (type) {
    case ColumnType::kInt64: return "int64";
    case ColumnType::kDouble: return "double";
    case ColumnType::kString: return "string";
    case ColumnType::kTimestamp: return "timestamp";
  }
  return "unknown";
}

Result<ColumnType> ParseColumnType(std::string_view name) {
  if (name == "int64" || name == "int") return ColumnType::kInt64;
  if (name == "double" || name == "float") return ColumnType::kDouble;
  if (name == "string") return ColumnType::kString;
  if (name == "timestamp") return ColumnType::kTimestamp;
  return Status::InvalidArgument("unknown column type '" + std::string(name) +
                                 "' (expected int64, double, string or timestamp)");
}

double Column::AsDouble(size_t row) const {
  switch (type) {
    case ColumnType::kInt64:
    case ColumnType::kTimestamp: return static_cast<double>(ints[row]);
    case ColumnType::kDouble: return doubles[row];
    case ColumnType::kString: return std::numeric_limits<double>::quiet_NaN();
  }
  return std::numeric_limits<double>::quiet_NaN();
}

int32_t Column::FindCode(std::string_view value) const {
  auto it = code_of_.find(std::string(value));
  return it == code_of_.end() ? -1 : it->second;
}

void Column::IndexDictionary() {
  code_of_.clear();
  code_of_.reserve(dictionary.size());
  for (size_t code = 0; code < dictionary.size(); ++code) {
    code_of_.emplace(dictionary[code], static_cast<int32_t>(code));
  }
}

Table::Table(TableSchema schema, std::vector<Column> columns, int64_t num_rows)
    : schema_(std::move(schema)), columns_(std::move(columns)), num_rows_(num_rows) {
  for (Column& column : columns_) {
    if (column.type == ColumnType::kString) column.IndexDictionary();
  }
}

Result<const Column*> Table::column(std::string_view name) const {
  for (const Column& column : columns_) {
    if (column.name == name) return &column;
  }
  std::string names;
  for (const Column& column : columns_) names += (names.empty() ? "" : ", ") + column.name;
  return Status::NotFound("table '" + schema_.name + "' has no column '" + std::string(name) +
                          "' (columns: " + names + ")");
}

const Column* Table::time_column() const {
  if (schema_.time_column.empty()) return nullptr;
  auto column = this->column(schema_.time_column);
  return column.ok() ? *column : nullptr;
}

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant, "chrono-compatible
// low-level date algorithms", days_from_civil).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool ParseDigits(std::string_view text, size_t pos, size_t len, int* out) {
  if (pos + len > text.size()) return false;
  int value = 0;
  for (size_t i = pos; i < pos + len; ++i) {
    const char c = text[i];
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  *out = value;
  return true;
}

}  // namespace

Result<int64_t> ParseTimestamp(std::string_view text) {
  auto bad = [&] {
    const std::string quoted = text.size() > 40 ? std::string(text.substr(0, 40)) + "..." : std::string(text);
    return Status::InvalidArgument("bad timestamp '" + quoted +
                                   "' (expected YYYY-MM-DD[ HH:MM[:SS]] or epoch seconds, years 0000-9999)");
  };
  if (text.empty()) return bad();
  if (text.size() < 10 || text[4] != '-') {
    int64_t seconds = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
    if (ec != std::errc() || ptr != text.data() + text.size()) return bad();
    if (!ValidTimestamp(seconds)) return bad();
    return seconds;
  }
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!ParseDigits(text, 0, 4, &year) || text[7] != '-' || !ParseDigits(text, 5, 2, &month) ||
      !ParseDigits(text, 8, 2, &day)) {
    return bad();
  }
  if (text.size() > 10) {
    if ((text[10] != ' ' && text[10] != 'T') || text.size() < 16 || text[13] != ':' ||
        !ParseDigits(text, 11, 2, &hour) || !ParseDigits(text, 14, 2, &minute)) {
      return bad();
    }
    if (text.size() > 16) {
      if (text.size() != 19 || text[16] != ':' || !ParseDigits(text, 17, 2, &second)) return bad();
    }
  }
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return bad();
  if (day < 1 || day > kDays[month - 1] + (month == 2 && leap ? 1 : 0)) return bad();  // 2001-02-30
  return DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
}

std::string FormatTimestamp(int64_t seconds) {
  // civil_from_days (H. Hinnant).
  int64_t days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
  int64_t rem = seconds - days * 86400;
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02u %02lld:%02lld:%02lld",
                static_cast<long long>(y), m, d, static_cast<long long>(rem / 3600),
                static_cast<long long>(rem / 60 % 60), static_cast<long long>(rem % 60));
  return buf;
}

Result<int64_t> ParseDuration(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument("bad duration '" + std::string(text) +
                                   "' (expected e.g. -30d, 7d, 1h, 90m, 15s or 0)");
  };
  if (text.empty()) return bad();
  int64_t unit = 1;
  std::string_view digits = text;
  switch (text.back()) {
    case 'd': unit = 86400; digits.remove_suffix(1); break;
    case 'h': unit = 3600; digits.remove_suffix(1); break;
    case 'm': unit = 60; digits.remove_suffix(1); break;
    case 's': unit = 1; digits.remove_suffix(1); break;
    default: break;
  }
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || ec != std::errc() || ptr != digits.data() + digits.size()) return bad();
  // Windows span at most the timestamps' own range (no overflow in now + duration).
  if (value > kMaxTimestamp / unit || value < -kMaxTimestamp / unit) {
    return Status::InvalidArgument("duration '" + std::string(text) + "' exceeds 10,000 years");
  }
  return value * unit;
}

namespace {

template <typename T>
void Permute(std::vector<T>& values, const std::vector<uint32_t>& order) {
  if (values.empty()) return;
  std::vector<T> out(values.size());
  for (size_t i = 0; i < order.size(); ++i) out[i] = values[order[i]];
  values.swap(out);
}

}  // namespace

void SortRowsByTime(const Column& time, std::vector<Column>& columns) {
  const std::vector<int64_t>& t = time.ints;
  if (std::is_sorted(t.begin(), t.end())) return;
  std::vector<uint32_t> order(t.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return t[a] < t[b]; });
  for (Column& c : columns) {
    Permute(c.ints, order);  // may permute `time` itself: `order` no longer reads it
    Permute(c.doubles, order);
    Permute(c.codes, order);
  }
}

}  // namespace apx::store
