// store/append_log.h
//
// A table's write-ahead log: rows appended to an embedded table are written here and synced to
// disk before the append is acknowledged, and replayed the next time the table is loaded, so
// an acknowledged append survives kill -9. The log is apxserve's own file beside the table's
// snapshot (LogPathFor); the user's CSV is never written.
//
// Format (docs/snapshot-format.md, "Append log"): records of
//   u32 magic "APXL" | u32 payload bytes | u32 CRC-32 of the payload | u32 CRC-32 of the
//   first 12 bytes | payload
// where the payload holds one append: its columns (type, name), the row count, then the rows,
// all little-endian. Replay decodes by column name. A torn last record (a crash mid-append,
// which was therefore never acknowledged) is dropped on replay and cut off, so later appends
// follow valid records; a damaged record header, or a damaged record followed by others, is
// DataLoss, never skipped. A write that fails is taken back before the error returns.
//
// Thread safety: Append may be called concurrently (it serialises); also across processes
// sharing the file (an exclusive flock around each record).
#ifndef APX_STORE_APPEND_LOG_H_
#define APX_STORE_APPEND_LOG_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/table.h"

namespace apx::store {

// "<snapshot without .apxsnap>.apxlog": data/flights.csv.apxsnap -> data/flights.csv.apxlog.
std::string LogPathFor(const std::string& snapshot_path);

class AppendLog {
 public:
  // The log at `path` for tables of `schema` (the file is created by the first Append).
  AppendLog(std::string path, TableSchema schema);

  // Reads every record of the log into tables of the schema, in order (none when the file
  // does not exist). A torn last record is cut off the file. DataLoss naming the file and
  // offset for a damaged record that is not the last, or rows that break the schema
  // (InvalidArgument from the parser).
  Result<std::vector<std::unique_ptr<Table>>> Replay() const;

  // Appends `rows` (a table with the schema's columns, in any order) as one record and
  // fdatasyncs the file (and, when it creates it, its folder) before returning. IoError naming
  // the file when it cannot be written: then the record's bytes are taken back (nothing
  // acknowledged, nothing replayed). InvalidArgument for NaN, infinite values or timestamps
  // out of range.
  Status Append(const Table& rows);

  const std::string& path() const { return path_; }

  // Test hook: write only the first `bytes` bytes of the next record and fail, as a crash
  // mid-append would leave it (-1: off).
  void set_tear_next_for_testing(int64_t bytes) { tear_next_ = bytes; }

 private:
  std::string path_;
  TableSchema schema_;
  std::mutex mu_;
  size_t verified_size_ = 0;  // the file's size after the last record this process checked
  bool broken_ = false;       // a failed write could not be taken back: refuse appends
  int64_t tear_next_ = -1;
};

// Rows of `base` followed by every table in `more` (all of base's schema), sorted by the time
// column when there is one. InvalidArgument when a schema differs.
Result<std::unique_ptr<Table>> ConcatTables(const Table& base,
                                            const std::vector<std::unique_ptr<Table>>& more);

}  // namespace apx::store

#endif  // APX_STORE_APPEND_LOG_H_
