// store/table.h
//
// An in-memory, column-major table: the base data of the embedded store. Columns are typed
// (int64, double, string as dictionary codes, timestamp as int64 seconds). When the schema
// names a time column, rows are kept sorted by it (stable), which the sampled layouts rely on.
//
// Thread safety: a Table is immutable once built; const methods may be called concurrently.
#ifndef APX_STORE_TABLE_H_
#define APX_STORE_TABLE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace apx::store {

enum class ColumnType : uint8_t {
  kInt64 = 0,
  kDouble = 1,
  kString = 2,     // dictionary-encoded: int32 codes + dictionary
  kTimestamp = 3,  // int64 seconds since 1970-01-01 00:00 (zone-naive)
};

std::string_view ColumnTypeName(ColumnType type);
Result<ColumnType> ParseColumnType(std::string_view name);  // int64|double|string|timestamp

struct ColumnSpec {
  std::string name;
  ColumnType type = ColumnType::kDouble;
};

struct TableSchema {
  std::string name;
  std::vector<ColumnSpec> columns;
  std::string time_column;  // empty: the table has no time order
};

struct Column {
  std::string name;
  ColumnType type = ColumnType::kDouble;
  std::vector<int64_t> ints;            // kInt64, kTimestamp
  std::vector<double> doubles;          // kDouble
  std::vector<int32_t> codes;           // kString
  std::vector<std::string> dictionary;  // kString: code -> value

  // The value of row `row` as a double (strings: NaN). REQUIRES: row < size.
  double AsDouble(size_t row) const;
  // Dictionary code of `value`, or -1 when the string never occurs. kString only.
  int32_t FindCode(std::string_view value) const;
  // Rebuilds the code lookup after `dictionary` changed.
  void IndexDictionary();

 private:
  std::unordered_map<std::string, int32_t> code_of_;
};

class Table {
 public:
  Table(TableSchema schema, std::vector<Column> columns, int64_t num_rows);

  const TableSchema& schema() const { return schema_; }
  const std::string& name() const { return schema_.name; }
  // Renames the table. REQUIRES: the table is not yet shared with other threads.
  void set_name(std::string name) { schema_.name = std::move(name); }
  int64_t num_rows() const { return num_rows_; }
  const std::vector<Column>& columns() const { return columns_; }

  // Column by name; NotFound naming the table and listing its columns.
  Result<const Column*> column(std::string_view name) const;
  // The time column, or nullptr when the schema has none.
  const Column* time_column() const;

 private:
  TableSchema schema_;
  std::vector<Column> columns_;
  int64_t num_rows_;
};

// Parses "YYYY-MM-DD", "YYYY-MM-DD HH:MM", "YYYY-MM-DD HH:MM:SS" (a 'T' may replace the
// space) or an integer number of seconds. Returns seconds since 1970-01-01 (zone-naive).
Result<int64_t> ParseTimestamp(std::string_view text);
// The timestamps apxserve accepts: 0000-01-01 00:00:00 .. 9999-12-31 23:59:59 UTC (epoch
// seconds), so that window arithmetic never overflows.
inline constexpr int64_t kMinTimestamp = -62167219200;
inline constexpr int64_t kMaxTimestamp = 253402300799;
inline bool ValidTimestamp(int64_t t) { return t >= kMinTimestamp && t <= kMaxTimestamp; }
// Formats seconds as "YYYY-MM-DD HH:MM:SS".
std::string FormatTimestamp(int64_t seconds);
// Parses a duration such as "30d", "-7d", "1h", "90m", "15s", "0".
Result<int64_t> ParseDuration(std::string_view text);

// Progress callback: rows done so far, total rows (or -1 when unknown).
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// Stably sorts the rows of `columns` (all of the same length) by `time`, usually one of them
// (it may alias an element of `columns`). A no-op when they are already sorted.
void SortRowsByTime(const Column& time, std::vector<Column>& columns);

// Reads a CSV file with a header line into a table of `schema`. Every schema column must
// appear in the header (extra CSV columns are ignored). Errors name the file, the line
// number and the column: a missing field, a number that does not parse, NaN or infinity, a
// bad timestamp. Rows are stably sorted by the time column when the schema has one.
Result<std::unique_ptr<Table>> ReadCsv(const std::string& path, const TableSchema& schema,
                                       const ProgressFn& progress = nullptr);
// ReadCsv on text already in memory; `path` only names it in messages.
Result<std::unique_ptr<Table>> ParseCsv(std::string_view text, const std::string& path,
                                        const TableSchema& schema, const ProgressFn& progress = nullptr);

// Writes `table` to `path` as one binary file (docs/snapshot-format.md). The data goes to a
// temporary file in the same directory that is fsynced and renamed over `path`, so a crash
// leaves either the old snapshot or the new one, never half a table. An existing file at
// `path` is replaced only if it is a regular file that starts with the snapshot magic
// (FailedPrecondition otherwise: the CSV, a device, a file of the user's); temporaries left by
// killed writers are removed.
struct SnapshotWriteOptions {
  // Test hook: fail with IoError after this many bytes were written (-1: never).
  int64_t fail_after_bytes_for_testing = -1;
};
Status WriteSnapshot(const Table& table, const std::string& path,
                     const SnapshotWriteOptions& options = {});
// Loads a snapshot written by WriteSnapshot. DataLoss when the file is truncated, its checksum
// does not match or its contents break the table's invariants (sizes, a time column that is
// not a sorted timestamp column, NaN or infinite doubles, duplicate names, bad dictionary
// codes); InvalidArgument when the magic or version is wrong.
Result<std::unique_ptr<Table>> ReadSnapshot(const std::string& path);
// ReadSnapshot on bytes in memory; `path` only names them in messages. verify_checksum =
// false is for fuzzing the parser behind the checksum.
Result<std::unique_ptr<Table>> ParseSnapshot(const std::string& data, const std::string& path,
                                             bool verify_checksum = true);
// True when `head` starts with the snapshot magic.
bool IsSnapshotHead(std::string_view head);

// OK when `table` has `expected`'s time column and every one of its columns with the same
// type; FailedPrecondition naming the first difference (a snapshot built from an older spec).
Status CheckTableMatches(const Table& table, const TableSchema& expected);

}  // namespace apx::store

#endif  // APX_STORE_TABLE_H_
