// store/append_log.cc: the embedded tables' write-ahead log (append_log.h).
#include "store/append_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <unordered_map>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

namespace apx::store {
namespace {

constexpr uint32_t kMagic = 0x4c585041;  // "APXL" little-endian
constexpr size_t kHeader = 12;

uint32_t Crc32(const char* data, size_t size) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ static_cast<uint8_t>(data[i])) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

template <typename T>
void Put(std::string* out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out->append(buf, sizeof(T));
}

template <typename T>
bool Get(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

std::string Encode(const Table& rows) {
  std::string payload;
  Put<uint32_t>(&payload, static_cast<uint32_t>(rows.num_rows()));
  Put<uint32_t>(&payload, static_cast<uint32_t>(rows.columns().size()));
  for (int64_t r = 0; r < rows.num_rows(); ++r) {
    for (const Column& c : rows.columns()) {
      switch (c.type) {
        case ColumnType::kInt64:
        case ColumnType::kTimestamp: Put<int64_t>(&payload, c.ints[r]); break;
        case ColumnType::kDouble: Put<double>(&payload, c.doubles[r]); break;
        case ColumnType::kString: {
          const std::string& s = c.dictionary[c.codes[r]];
          Put<uint32_t>(&payload, static_cast<uint32_t>(s.size()));
          payload += s;
          break;
        }
      }
    }
  }
  return payload;
}

Result<std::unique_ptr<Table>> Decode(std::string_view in, const TableSchema& schema, const std::string& where) {
  auto bad = [&](const std::string& why) { return Status::DataLoss(where + ": " + why); };
  uint32_t rows = 0, cols = 0;
  if (!Get(&in, &rows) || !Get(&in, &cols)) return bad("record too short");
  if (cols != schema.columns.size()) {
    return bad("record has " + std::to_string(cols) + " columns, table '" + schema.name + "' has " +
               std::to_string(schema.columns.size()));
  }
  std::vector<Column> columns(cols);
  std::vector<std::unordered_map<std::string, int32_t>> codes(cols);
  for (size_t i = 0; i < cols; ++i) {
    columns[i].name = schema.columns[i].name;
    columns[i].type = schema.columns[i].type;
  }
  for (uint32_t r = 0; r < rows; ++r) {
    for (size_t i = 0; i < cols; ++i) {
      Column& c = columns[i];
      switch (c.type) {
        case ColumnType::kInt64:
        case ColumnType::kTimestamp: {
          int64_t v = 0;
          if (!Get(&in, &v)) return bad("record ends inside row " + std::to_string(r));
          if (c.type == ColumnType::kTimestamp && !ValidTimestamp(v)) return bad("timestamp out of range");
          c.ints.push_back(v);
          break;
        }
        case ColumnType::kDouble: {
          double v = 0;
          if (!Get(&in, &v)) return bad("record ends inside row " + std::to_string(r));
          if (!std::isfinite(v)) return bad("NaN or infinite value in column '" + c.name + "'");
          c.doubles.push_back(v);
          break;
        }
        case ColumnType::kString: {
          uint32_t len = 0;
          if (!Get(&in, &len) || in.size() < len) return bad("record ends inside row " + std::to_string(r));
          std::string s(in.substr(0, len));
          in.remove_prefix(len);
          auto [it, added] = codes[i].emplace(s, static_cast<int32_t>(c.dictionary.size()));
          if (added) c.dictionary.push_back(std::move(s));
          c.codes.push_back(it->second);
          break;
        }
      }
    }
  }
  if (!in.empty()) return bad("trailing bytes after " + std::to_string(rows) + " rows");
  for (Column& c : columns) c.IndexDictionary();
  return std::make_unique<Table>(schema, std::move(columns), rows);
}

}  // namespace

std::string LogPathFor(const std::string& snapshot_path) {
  constexpr std::string_view kSnap = ".apxsnap";
  std::string base = snapshot_path;
  if (base.size() >= kSnap.size() && base.compare(base.size() - kSnap.size(), kSnap.size(), kSnap) == 0) {
    base.resize(base.size() - kSnap.size());
  }
  return base + ".apxlog";
}

AppendLog::AppendLog(std::string path, TableSchema schema) : path_(std::move(path)), schema_(std::move(schema)) {}

Result<std::vector<std::unique_ptr<Table>>> AppendLog::Replay() const {
  std::vector<std::unique_ptr<Table>> out;
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return out;
    return Status::IoError("cannot read append log '" + path_ + "': " + std::strerror(errno));
  }
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = 0;
  while (pos < data.size()) {
    const std::string where = "append log '" + path_ + "' at byte " + std::to_string(pos);
    std::string_view head(data.data() + pos, data.size() - pos);
    uint32_t magic = 0, size = 0, crc = 0;
    const bool has_header = Get(&head, &magic) && Get(&head, &size) && Get(&head, &crc);
    if (has_header && magic != kMagic) return Status::DataLoss(where + ": not an append record");
    // A record cut short, or the last record with a wrong checksum: a crash mid-append, which
    // was never acknowledged. Anything damaged before the end is not a torn tail.
    const bool torn = !has_header || head.size() < size ||
                      (Crc32(head.data(), size) != crc && head.size() == size);
    if (!torn && Crc32(head.data(), size) != crc) {
      return Status::DataLoss(where + ": damaged record (checksum mismatch) before the end of the log");
    }
    if (torn) {
      std::fprintf(stderr, "apxserve: %s: dropping a torn last record (%zu bytes, never acknowledged)\n",
                   where.c_str(), data.size() - pos);
      if (::truncate(path_.c_str(), static_cast<off_t>(pos)) != 0) {
        return Status::IoError("cannot truncate append log '" + path_ + "': " + std::strerror(errno));
      }
      break;
    }
    APX_ASSIGN_OR_RETURN(auto table, Decode(head.substr(0, size), schema_, where));
    out.push_back(std::move(table));
    pos += kHeader + size;
  }
  return out;
}

Status AppendLog::Append(const Table& rows) {
  APX_RETURN_IF_ERROR(CheckTableMatches(rows, schema_));
  const std::string payload = Encode(rows);
  std::string record;
  Put<uint32_t>(&record, kMagic);
  Put<uint32_t>(&record, static_cast<uint32_t>(payload.size()));
  Put<uint32_t>(&record, Crc32(payload.data(), payload.size()));
  record += payload;
  std::lock_guard<std::mutex> lock(mu_);
  auto io_error = [&](const char* what) {
    return Status::IoError("append log '" + path_ + "': " + what + ": " + std::strerror(errno));
  };
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("cannot open");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::flock(fd, LOCK_EX) != 0) return io_error("cannot lock");
  size_t size = record.size();
  if (tear_next_ >= 0) size = std::min(size, static_cast<size_t>(tear_next_));
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, record.data() + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return io_error("cannot write");
    done += static_cast<size_t>(n);
  }
  if (tear_next_ >= 0) {
    tear_next_ = -1;
    ::fdatasync(fd);
    return Status::IoError("append log '" + path_ + "': torn for testing");
  }
  if (::fdatasync(fd) != 0) return io_error("cannot sync");
  return Status::Ok();
}

Result<std::unique_ptr<Table>> ConcatTables(const Table& base, const std::vector<std::unique_ptr<Table>>& more) {
  std::vector<Column> columns = base.columns();
  std::vector<std::unordered_map<std::string, int32_t>> new_codes(columns.size());
  int64_t rows = base.num_rows();
  for (const std::unique_ptr<Table>& t : more) {
    APX_RETURN_IF_ERROR(CheckTableMatches(*t, base.schema()));
    for (size_t i = 0; i < columns.size(); ++i) {
      Column& dst = columns[i];
      const Column& src = *t->column(dst.name).value();
      switch (dst.type) {
        case ColumnType::kInt64:
        case ColumnType::kTimestamp: dst.ints.insert(dst.ints.end(), src.ints.begin(), src.ints.end()); break;
        case ColumnType::kDouble: dst.doubles.insert(dst.doubles.end(), src.doubles.begin(), src.doubles.end()); break;
        case ColumnType::kString: {
          // Codes of src's dictionary in dst's (new strings appended to it).
          std::vector<int32_t> remap(src.dictionary.size());
          for (size_t k = 0; k < src.dictionary.size(); ++k) {
            auto [it, added] = new_codes[i].emplace(src.dictionary[k], static_cast<int32_t>(dst.dictionary.size()));
            if (added) {
              const int32_t old = dst.FindCode(src.dictionary[k]);
              if (old >= 0) {
                it->second = old;
              } else {
                dst.dictionary.push_back(src.dictionary[k]);
              }
            }
            remap[k] = it->second;
          }
          for (int32_t code : src.codes) dst.codes.push_back(remap[code]);
          break;
        }
      }
    }
    rows += t->num_rows();
  }
  for (Column& c : columns) {
    if (c.type == ColumnType::kString) c.IndexDictionary();
  }
  if (!base.schema().time_column.empty()) {
    for (const Column& c : columns) {
      if (c.name == base.schema().time_column) {
        const Column time = c;
        SortRowsByTime(time, columns);
        break;
      }
    }
  }
  return std::make_unique<Table>(base.schema(), std::move(columns), rows);
}

}  // namespace apx::store
