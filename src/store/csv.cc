// CSV ingest into a column-major Table.
#include <algorithm>
#include <charconv>
#include <deque>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <unordered_map>

#include "store/layout.h"
#include "store/table.h"

namespace apx::store {
namespace {

// Splits one CSV line into fields (RFC 4180 quoting: "a,b" and "" for a quote). Returns false
// on an unterminated quote. `fields` views into `line` or `scratch` (for unescaped quotes).
bool SplitLine(std::string_view line, std::vector<std::string_view>* fields,
               std::deque<std::string>* scratch) {
  fields->clear();
  scratch->clear();
  size_t pos = 0;
  while (true) {
    if (pos < line.size() && line[pos] == '"') {
      std::string value;
      size_t i = pos + 1;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            value += '"';
            i += 2;
            continue;
          }
          closed = true;
          ++i;
          break;
        }
        value += line[i++];
      }
      if (!closed) return false;
      scratch->push_back(std::move(value));
      fields->push_back(scratch->back());
      pos = i;
      if (pos < line.size() && line[pos] == ',') {
        ++pos;
        continue;
      }
      return pos >= line.size();
    }
    const size_t comma = line.find(',', pos);
    if (comma == std::string_view::npos) {
      fields->push_back(line.substr(pos));
      return true;
    }
    fields->push_back(line.substr(pos, comma - pos));
    pos = comma + 1;
  }
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

struct ColumnBuilder {
  Column column;
  int csv_index = -1;
  std::unordered_map<std::string, int32_t> codes;
};

Status ParseField(std::string_view text, ColumnBuilder& b) {
  Column& c = b.column;
  switch (c.type) {
    case ColumnType::kInt64: {
      int64_t v = 0;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
        return Status::InvalidArgument("'" + std::string(text) + "' is not an int64");
      }
      c.ints.push_back(v);
      return Status::Ok();
    }
    case ColumnType::kDouble: {
      double v = 0;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
        return Status::InvalidArgument("'" + std::string(text) + "' is not a number");
      }
      if (!std::isfinite(v)) {
        return Status::InvalidArgument("'" + std::string(text) + "' is not a finite number");
      }
      c.doubles.push_back(v);
      return Status::Ok();
    }
    case ColumnType::kTimestamp: {
      APX_ASSIGN_OR_RETURN(int64_t v, ParseTimestamp(text));
      c.ints.push_back(v);
      return Status::Ok();
    }
    case ColumnType::kString: {
      auto [it, inserted] =
          b.codes.try_emplace(std::string(text), static_cast<int32_t>(c.dictionary.size()));
      if (inserted) c.dictionary.emplace_back(text);
      c.codes.push_back(it->second);
      return Status::Ok();
    }
  }
  return Status::Internal("unknown column type");
}

}  // namespace

Result<std::unique_ptr<Table>> ReadCsv(const std::string& path, const TableSchema& schema,
                                       const ProgressFn& progress) {
  // Only regular files: a directory or a device (`csv: /dev/zero`) would read forever or fail
  // obscurely.
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) return Status::NotFound("cannot open CSV file '" + path + "'");
  if (!std::filesystem::is_regular_file(status)) {
    return Status::InvalidArgument("CSV '" + path + "' is not a regular file (a directory or a device)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot open CSV file '" + path + "'");
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status::IoError("error reading '" + path + "'");
  return ParseCsv(data, path, schema, progress);
}

Result<std::unique_ptr<Table>> ParseCsv(std::string_view text, const std::string& path,
                                        const TableSchema& schema, const ProgressFn& progress) {
  size_t pos = 0;
  auto next_line = [&](std::string_view* line) {
    if (pos >= text.size()) return false;
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    *line = text.substr(pos, end - pos);
    if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
    pos = end + 1;
    return true;
  };

  std::string_view header;
  if (!next_line(&header) || Trim(header).empty()) {
    return Status::InvalidArgument(path + ": empty file (expected a header line)");
  }
  std::vector<std::string_view> fields;
  // A deque: growing it never moves the strings that `fields` already views (a vector did,
  // and short strings live inside the element: a use-after-free found by fuzz/csv_fuzz).
  std::deque<std::string> scratch;
  if (!SplitLine(header, &fields, &scratch)) {
    return Status::InvalidArgument(path + ":1: unterminated quote in the header");
  }
  std::vector<std::string> header_names;
  for (auto f : fields) header_names.emplace_back(Trim(f));

  if (schema.columns.empty()) {
    return Status::InvalidArgument("table '" + schema.name + "' declares no columns");
  }
  std::vector<ColumnBuilder> builders(schema.columns.size());
  for (size_t i = 0; i < schema.columns.size(); ++i) {
    builders[i].column.name = schema.columns[i].name;
    builders[i].column.type = schema.columns[i].type;
    auto it = std::find(header_names.begin(), header_names.end(), schema.columns[i].name);
    if (it == header_names.end()) {
      return Status::InvalidArgument(path + ":1: header has no column '" +
                                     schema.columns[i].name + "' declared by table '" +
                                     schema.name + "'");
    }
    builders[i].csv_index = static_cast<int>(it - header_names.begin());
  }

  const int64_t approx_rows = static_cast<int64_t>(text.size() / std::max<size_t>(header.size(), 16));
  int64_t line_no = 1;
  int64_t rows = 0;
  std::string_view line;
  while (next_line(&line)) {
    ++line_no;
    if (Trim(line).empty()) continue;
    if (!SplitLine(line, &fields, &scratch)) {
      return Status::InvalidArgument(path + ":" + std::to_string(line_no) + ": unterminated quote");
    }
    if (fields.size() != header_names.size()) {
      return Status::InvalidArgument(path + ":" + std::to_string(line_no) + ": expected " +
                                     std::to_string(header_names.size()) + " fields, found " +
                                     std::to_string(fields.size()));
    }
    for (ColumnBuilder& b : builders) {
      Status s = ParseField(Trim(fields[b.csv_index]), b);
      if (!s.ok()) {
        return Status::InvalidArgument(path + ":" + std::to_string(line_no) + ": column '" +
                                       b.column.name + "': " + s.message());
      }
    }
    ++rows;
    if (progress && rows % kIngestProgressRows == 0) progress(rows, approx_rows);
  }
  if (rows > static_cast<int64_t>(UINT32_MAX)) {
    return Status::OutOfRange(path + ": more than 2^32 rows are not supported");
  }
  if (progress) progress(rows, rows);

  std::vector<Column> columns;
  for (ColumnBuilder& b : builders) columns.push_back(std::move(b.column));

  if (!schema.time_column.empty()) {
    auto it = std::find_if(columns.begin(), columns.end(),
                           [&](const Column& c) { return c.name == schema.time_column; });
    if (it == columns.end() || it->type != ColumnType::kTimestamp) {
      return Status::InvalidArgument("table '" + schema.name + "': time column '" +
                                     schema.time_column + "' must be a declared timestamp column");
    }
    SortRowsByTime(*it, columns);
  }
  return std::make_unique<Table>(schema, std::move(columns), rows);
}

}  // namespace apx::store
