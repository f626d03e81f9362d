// Binary table snapshots: one file, written to a temporary name and renamed
// (docs/snapshot-format.md).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_set>
#include <filesystem>
#include <fstream>

#include "common/file.h"
#include "store/layout.h"
#include "store/table.h"

namespace apx::store {
namespace {

// 64-bit checksum over 8-byte words (FNV-1a style multiply-xor; the tail is zero-padded).
class Checksum {
 public:
  void Add(const void* data, size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) {
      word_ |= static_cast<uint64_t>(p[i]) << (8 * fill_);
      if (++fill_ == 8) Flush();
    }
  }
  uint64_t Finish() {
    if (fill_ > 0) Flush();
    return hash_;
  }

 private:
  void Flush() {
    hash_ = (hash_ ^ word_) * 0x100000001b3ULL;
    hash_ ^= hash_ >> 29;
    word_ = 0;
    fill_ = 0;
  }
  uint64_t hash_ = 0xcbf29ce484222325ULL;
  uint64_t word_ = 0;
  int fill_ = 0;
};

class SnapshotWriter {
 public:
  SnapshotWriter(std::FILE* file, int64_t fail_after) : file_(file), fail_after_(fail_after) {}

  Status Write(const void* data, size_t size) {
    if (fail_after_ >= 0 && written_ + static_cast<int64_t>(size) > fail_after_) {
      return Status::IoError("injected write failure after " + std::to_string(fail_after_) +
                             " bytes");
    }
    if (size > 0 && std::fwrite(data, 1, size, file_) != size) {
      return Status::IoError(std::string("write failed: ") + std::strerror(errno));
    }
    checksum_.Add(data, size);
    written_ += static_cast<int64_t>(size);
    return Status::Ok();
  }
  template <typename T>
  Status Pod(T value) {
    return Write(&value, sizeof(value));
  }
  Status String(const std::string& s) {
    APX_RETURN_IF_ERROR(Pod<uint32_t>(static_cast<uint32_t>(s.size())));
    return Write(s.data(), s.size());
  }
  template <typename T>
  Status Array(const std::vector<T>& v) {
    APX_RETURN_IF_ERROR(Pod<uint64_t>(v.size()));
    return Write(v.data(), v.size() * sizeof(T));
  }
  uint64_t checksum() { return checksum_.Finish(); }

 private:
  std::FILE* file_;
  int64_t fail_after_;
  int64_t written_ = 0;
  Checksum checksum_;
};

Status WriteBody(const Table& table, SnapshotWriter& w) {
  APX_RETURN_IF_ERROR(w.Pod<uint64_t>(kSnapshotMagic));
  APX_RETURN_IF_ERROR(w.Pod<uint32_t>(kSnapshotVersion));
  APX_RETURN_IF_ERROR(w.Pod<uint64_t>(static_cast<uint64_t>(table.num_rows())));
  APX_RETURN_IF_ERROR(w.String(table.schema().name));
  APX_RETURN_IF_ERROR(w.String(table.schema().time_column));
  APX_RETURN_IF_ERROR(w.Pod<uint32_t>(static_cast<uint32_t>(table.columns().size())));
  for (const Column& c : table.columns()) {
    APX_RETURN_IF_ERROR(w.String(c.name));
    APX_RETURN_IF_ERROR(w.Pod<uint8_t>(static_cast<uint8_t>(c.type)));
    switch (c.type) {
      case ColumnType::kInt64:
      case ColumnType::kTimestamp: APX_RETURN_IF_ERROR(w.Array(c.ints)); break;
      case ColumnType::kDouble: APX_RETURN_IF_ERROR(w.Array(c.doubles)); break;
      case ColumnType::kString:
        APX_RETURN_IF_ERROR(w.Pod<uint32_t>(static_cast<uint32_t>(c.dictionary.size())));
        for (const std::string& s : c.dictionary) APX_RETURN_IF_ERROR(w.String(s));
        APX_RETURN_IF_ERROR(w.Array(c.codes));
        break;
    }
  }
  return Status::Ok();
}

class Reader {
 public:
  Reader(const std::string& data, const std::string& path) : data_(data), path_(path) {}

  template <typename T>
  Status Pod(T* out) {
    if (pos_ + sizeof(T) > end_) return Truncated();
    std::memcpy(out, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }
  Status String(std::string* out) {
    uint32_t size = 0;
    APX_RETURN_IF_ERROR(Pod(&size));
    if (size > end_ - pos_) return Truncated();
    out->assign(data_.data() + pos_, size);
    pos_ += size;
    return Status::Ok();
  }
  template <typename T>
  Status Array(std::vector<T>* out, uint64_t expected) {
    uint64_t size = 0;
    APX_RETURN_IF_ERROR(Pod(&size));
    if (size != expected) {
      return Status::DataLoss(path_ + ": column has " + std::to_string(size) + " values, expected " +
                              std::to_string(expected));
    }
    if (size > (end_ - pos_) / sizeof(T)) return Truncated();  // no overflow for huge sizes
    out->resize(size);
    if (size > 0) std::memcpy(out->data(), data_.data() + pos_, size * sizeof(T));
    pos_ += size * sizeof(T);
    return Status::Ok();
  }
  void set_end(size_t end) { end_ = end; }
  size_t pos() const { return pos_; }
  size_t remaining() const { return end_ - pos_; }

 private:
  Status Truncated() const { return Status::DataLoss(path_ + ": snapshot is truncated"); }
  const std::string& data_;
  const std::string& path_;
  size_t pos_ = 0;
  size_t end_ = 0;
};

// What every table the store serves satisfies (a CSV ingest guarantees it; a snapshot with a
// valid checksum may still have been written by another version or crafted).
Status CheckInvariants(const TableSchema& schema, const std::vector<Column>& columns,
                       const std::string& path) {
  for (size_t i = 0; i < columns.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (columns[i].name == columns[j].name) {
        return Status::DataLoss(path + ": column '" + columns[i].name + "' appears twice");
      }
    }
    const Column& c = columns[i];
    if (c.type == ColumnType::kDouble) {
      for (double v : c.doubles) {
        if (!std::isfinite(v)) return Status::DataLoss(path + ": column '" + c.name + "' holds NaN or infinity");
      }
    }
    if (c.type == ColumnType::kString) {
      std::unordered_set<std::string_view> seen;
      for (const std::string& s : c.dictionary) {
        if (!seen.insert(s).second) {
          return Status::DataLoss(path + ": column '" + c.name + "' has a duplicate dictionary entry");
        }
      }
    }
  }
  if (!schema.time_column.empty()) {
    const Column* time = nullptr;
    for (const Column& c : columns) {
      if (c.name == schema.time_column) time = &c;
    }
    if (time == nullptr || time->type != ColumnType::kTimestamp) {
      return Status::DataLoss(path + ": time column '" + schema.time_column +
                              "' is missing or not a timestamp column");
    }
    if (!std::is_sorted(time->ints.begin(), time->ints.end())) {
      return Status::DataLoss(path + ": time column '" + schema.time_column + "' is not sorted");
    }
  }
  for (const Column& c : columns) {
    if (c.type != ColumnType::kTimestamp) continue;
    for (int64_t t : c.ints) {
      if (!ValidTimestamp(t)) {
        return Status::DataLoss(path + ": column '" + c.name + "' holds a timestamp outside years 0000-9999");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

bool IsSnapshotHead(std::string_view head) {
  uint64_t magic = 0;
  if (head.size() < sizeof(magic)) return false;
  std::memcpy(&magic, head.data(), sizeof(magic));
  return magic == kSnapshotMagic;
}

Status WriteSnapshot(const Table& table, const std::string& path,
                     const SnapshotWriteOptions& options) {
  // Only ever replace a snapshot (magic) that is a regular file: never the CSV, a device
  // node or a file of the user's that happens to sit at the snapshot path.
  APX_RETURN_IF_ERROR(CheckReplaceable(path, "snapshot", IsSnapshotHead));
  APX_RETURN_IF_ERROR(CreateParentDirectories(path));
  RemoveStaleTemporaries(path);
  const std::string tmp = TemporaryPathFor(path);
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  if (file == nullptr) {
    return Status::IoError("cannot create '" + tmp + "': " + std::strerror(errno));
  }
  SnapshotWriter writer(file, options.fail_after_bytes_for_testing);
  Status s = WriteBody(table, writer);
  if (s.ok()) {
    const uint64_t checksum = writer.checksum();
    s = writer.Pod<uint64_t>(checksum);
  }
  if (s.ok()) s = writer.Pod<uint64_t>(kSnapshotMagic);
  if (s.ok() && std::fflush(file) != 0) s = Status::IoError("flush failed");
  if (std::fclose(file) != 0 && s.ok()) s = Status::IoError("close failed");
  if (!s.ok()) {
    std::remove(tmp.c_str());
    return s.WithPrefix("writing snapshot '" + path + "'");
  }
  return CommitTemporary(tmp, path);  // fsync, rename, fsync of the folder
}

Result<std::unique_ptr<Table>> ReadSnapshot(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    return Status::InvalidArgument("snapshot '" + path + "' is not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot open snapshot '" + path + "'");
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return ParseSnapshot(data, path);
}

Result<std::unique_ptr<Table>> ParseSnapshot(const std::string& data, const std::string& path,
                                             bool verify_checksum) {
  constexpr size_t kFooter = 2 * sizeof(uint64_t);
  if (!IsSnapshotHead(data)) {
    return Status::InvalidArgument(path + ": not an apxserve snapshot (bad magic)");
  }
  if (data.size() < sizeof(uint64_t) + kFooter) {
    return Status::DataLoss(path + ": snapshot is truncated");
  }
  uint64_t magic = kSnapshotMagic;
  uint64_t stored_checksum = 0, tail_magic = 0;
  std::memcpy(&stored_checksum, data.data() + data.size() - kFooter, sizeof(uint64_t));
  std::memcpy(&tail_magic, data.data() + data.size() - sizeof(uint64_t), sizeof(uint64_t));
  if (tail_magic != kSnapshotMagic) return Status::DataLoss(path + ": snapshot is truncated");
  Checksum checksum;
  if (verify_checksum) checksum.Add(data.data(), data.size() - kFooter);
  if (verify_checksum && checksum.Finish() != stored_checksum) {
    return Status::DataLoss(path + ": snapshot checksum mismatch (corrupt file)");
  }

  Reader r(data, path);
  r.set_end(data.size() - kFooter);
  uint32_t version = 0;
  uint64_t num_rows = 0;
  APX_RETURN_IF_ERROR(r.Pod(&magic));
  APX_RETURN_IF_ERROR(r.Pod(&version));
  if (version != kSnapshotVersion) {
    return Status::InvalidArgument(path + ": snapshot format version " + std::to_string(version) +
                                   " is not supported (expected " +
                                   std::to_string(kSnapshotVersion) + ")");
  }
  APX_RETURN_IF_ERROR(r.Pod(&num_rows));
  TableSchema schema;
  APX_RETURN_IF_ERROR(r.String(&schema.name));
  APX_RETURN_IF_ERROR(r.String(&schema.time_column));
  uint32_t num_columns = 0;
  APX_RETURN_IF_ERROR(r.Pod(&num_columns));
  // Every column takes at least 13 bytes (name length, type, value count): a count the rest
  // of the file cannot hold is corrupt, not an allocation to attempt.
  if (num_columns == 0 || num_columns > r.remaining() / 13) {
    return Status::DataLoss(path + ": snapshot declares " + std::to_string(num_columns) + " columns");
  }
  if (num_rows > (uint64_t{1} << 32)) {
    return Status::DataLoss(path + ": snapshot declares " + std::to_string(num_rows) +
                            " rows (more than 2^32 are not supported)");
  }
  std::vector<Column> columns(num_columns);
  for (Column& c : columns) {
    APX_RETURN_IF_ERROR(r.String(&c.name));
    uint8_t type = 0;
    APX_RETURN_IF_ERROR(r.Pod(&type));
    if (type > static_cast<uint8_t>(ColumnType::kTimestamp)) {
      return Status::DataLoss(path + ": column '" + c.name + "' has unknown type " +
                              std::to_string(type));
    }
    c.type = static_cast<ColumnType>(type);
    switch (c.type) {
      case ColumnType::kInt64:
      case ColumnType::kTimestamp: APX_RETURN_IF_ERROR(r.Array(&c.ints, num_rows)); break;
      case ColumnType::kDouble: APX_RETURN_IF_ERROR(r.Array(&c.doubles, num_rows)); break;
      case ColumnType::kString: {
        uint32_t dict_size = 0;
        APX_RETURN_IF_ERROR(r.Pod(&dict_size));
        if (dict_size > r.remaining() / 4) return Status::DataLoss(path + ": snapshot is truncated");
        c.dictionary.resize(dict_size);
        for (std::string& s : c.dictionary) APX_RETURN_IF_ERROR(r.String(&s));
        APX_RETURN_IF_ERROR(r.Array(&c.codes, num_rows));
        for (int32_t code : c.codes) {
          if (code < 0 || static_cast<uint32_t>(code) >= dict_size) {
            return Status::DataLoss(path + ": column '" + c.name + "' has a bad dictionary code");
          }
        }
        break;
      }
    }
    schema.columns.push_back({c.name, c.type});
  }
  if (r.pos() != data.size() - kFooter) return Status::DataLoss(path + ": trailing bytes in snapshot");
  APX_RETURN_IF_ERROR(CheckInvariants(schema, columns, path));
  return std::make_unique<Table>(std::move(schema), std::move(columns),
                                 static_cast<int64_t>(num_rows));
}

Status CheckTableMatches(const Table& table, const TableSchema& expected) {
  const TableSchema& have = table.schema();
  if (have.time_column != expected.time_column) {
    return Status::FailedPrecondition("time column is '" + have.time_column + "', the spec says '" +
                                      expected.time_column + "'");
  }
  for (const ColumnSpec& want : expected.columns) {
    auto column = table.column(want.name);
    if (!column.ok()) return Status::FailedPrecondition("no column '" + want.name + "'");
    if ((*column)->type != want.type) {
      return Status::FailedPrecondition("column '" + want.name + "' is " +
                                        std::string(ColumnTypeName((*column)->type)) + ", the spec says " +
                                        std::string(ColumnTypeName(want.type)));
    }
  }
  return Status::Ok();
}

}  // namespace apx::store
