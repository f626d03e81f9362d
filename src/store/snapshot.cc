// Binary table snapshots: one file, written to a temporary name and renamed
// (docs/snapshot-format.md).
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

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
    if (pos_ + size > end_) return Truncated();
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
    if (pos_ + size * sizeof(T) > end_) return Truncated();
    out->resize(size);
    std::memcpy(out->data(), data_.data() + pos_, size * sizeof(T));
    pos_ += size * sizeof(T);
    return Status::Ok();
  }
  void set_end(size_t end) { end_ = end; }
  size_t pos() const { return pos_; }

 private:
  Status Truncated() const { return Status::DataLoss(path_ + ": snapshot is truncated"); }
  const std::string& data_;
  const std::string& path_;
  size_t pos_ = 0;
  size_t end_ = 0;
};

}  // namespace

Status WriteSnapshot(const Table& table, const std::string& path,
                     const SnapshotWriteOptions& options) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
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
  if (s.ok() && ::fsync(::fileno(file)) != 0) s = Status::IoError("fsync failed");
  if (std::fclose(file) != 0 && s.ok()) s = Status::IoError("close failed");
  if (!s.ok()) {
    std::remove(tmp.c_str());
    return s.WithPrefix("writing snapshot '" + path + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Status::IoError("cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(errno));
  }
  // Persist the rename itself.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return Status::Ok();
}

Result<std::unique_ptr<Table>> ReadSnapshot(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot open snapshot '" + path + "'");
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  constexpr size_t kFooter = 2 * sizeof(uint64_t);
  if (data.size() < sizeof(uint64_t) + kFooter) {
    return Status::DataLoss(path + ": snapshot is truncated");
  }
  uint64_t magic = 0;
  std::memcpy(&magic, data.data(), sizeof(magic));
  if (magic != kSnapshotMagic) {
    return Status::InvalidArgument(path + ": not an apxserve snapshot (bad magic)");
  }
  uint64_t stored_checksum = 0, tail_magic = 0;
  std::memcpy(&stored_checksum, data.data() + data.size() - kFooter, sizeof(uint64_t));
  std::memcpy(&tail_magic, data.data() + data.size() - sizeof(uint64_t), sizeof(uint64_t));
  if (tail_magic != kSnapshotMagic) return Status::DataLoss(path + ": snapshot is truncated");
  Checksum checksum;
  checksum.Add(data.data(), data.size() - kFooter);
  if (checksum.Finish() != stored_checksum) {
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
  return std::make_unique<Table>(std::move(schema), std::move(columns),
                                 static_cast<int64_t>(num_rows));
}

}  // namespace apx::store
