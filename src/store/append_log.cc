// store/append_log.cc: the embedded tables' write-ahead log (append_log.h).
#include "store/append_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_map>

namespace apx::store {
namespace {

constexpr uint32_t kMagic = 0x4c585041;  // "APXL" little-endian
constexpr size_t kHeader = 16;  // magic, payload size, payload CRC, header CRC

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

// Payload: the record's columns (type byte, name), then its rows, columns in schema order.
std::string Encode(const Table& rows, const TableSchema& schema) {
  std::vector<const Column*> cols;
  for (const ColumnSpec& c : schema.columns) cols.push_back(*rows.column(c.name));
  std::string payload;
  Put<uint32_t>(&payload, static_cast<uint32_t>(cols.size()));
  for (const Column* c : cols) {
    Put<uint8_t>(&payload, static_cast<uint8_t>(c->type));
    Put<uint32_t>(&payload, static_cast<uint32_t>(c->name.size()));
    payload += c->name;
  }
  Put<uint32_t>(&payload, static_cast<uint32_t>(rows.num_rows()));
  for (int64_t r = 0; r < rows.num_rows(); ++r) {
    for (const Column* c : cols) {
      switch (c->type) {
        case ColumnType::kInt64:
        case ColumnType::kTimestamp: Put<int64_t>(&payload, c->ints[r]); break;
        case ColumnType::kDouble: Put<double>(&payload, c->doubles[r]); break;
        case ColumnType::kString: {
          const std::string& v = c->dictionary[c->codes[r]];
          Put<uint32_t>(&payload, static_cast<uint32_t>(v.size()));
          payload += v;
          break;
        }
      }
    }
  }
  return payload;
}

// Decodes a payload onto `schema` by column name (the record may hold more columns).
Result<std::unique_ptr<Table>> Decode(std::string_view in, const TableSchema& schema, const std::string& where) {
  auto bad = [&](const std::string& why) { return Status::DataLoss(where + ": " + why); };
  uint32_t ncols = 0, rows = 0;
  if (!Get(&in, &ncols) || ncols > 100000) return bad("record too short");
  std::vector<std::pair<ColumnType, std::string>> rec(ncols);
  for (auto& [type, name] : rec) {
    uint8_t t = 0;
    uint32_t len = 0;
    if (!Get(&in, &t) || t > static_cast<uint8_t>(ColumnType::kTimestamp) || !Get(&in, &len) || in.size() < len) {
      return bad("damaged column list");
    }
    type = static_cast<ColumnType>(t);
    name = std::string(in.substr(0, len));
    in.remove_prefix(len);
  }
  // Where each record column goes in the schema (-1: not in it, dropped).
  std::vector<int> target(ncols, -1);
  for (size_t i = 0; i < schema.columns.size(); ++i) {
    const ColumnSpec& want = schema.columns[i];
    auto it = std::find_if(rec.begin(), rec.end(), [&](const auto& c) { return c.second == want.name; });
    if (it == rec.end()) {
      return bad("the appended rows have no column '" + want.name + "' (the table gained it after they were " +
                 "appended: restore the table's columns, or delete the log to drop the rows)");
    }
    if (it->first != want.type) {
      return bad("column '" + want.name + "' was appended as " + std::string(ColumnTypeName(it->first)) +
                 ", the table has " + std::string(ColumnTypeName(want.type)));
    }
    target[it - rec.begin()] = static_cast<int>(i);
  }
  if (!Get(&in, &rows)) return bad("record too short");
  std::vector<Column> columns(schema.columns.size());
  std::vector<std::unordered_map<std::string, int32_t>> codes(columns.size());
  for (size_t i = 0; i < columns.size(); ++i) {
    columns[i].name = schema.columns[i].name;
    columns[i].type = schema.columns[i].type;
  }
  const std::string short_row = "record ends inside a row";
  for (uint32_t r = 0; r < rows; ++r) {
    for (size_t k = 0; k < ncols; ++k) {
      Column* c = target[k] >= 0 ? &columns[target[k]] : nullptr;
      switch (rec[k].first) {
        case ColumnType::kInt64:
        case ColumnType::kTimestamp: {
          int64_t v = 0;
          if (!Get(&in, &v)) return bad(short_row);
          if (rec[k].first == ColumnType::kTimestamp && !ValidTimestamp(v)) return bad("timestamp out of range");
          if (c != nullptr) c->ints.push_back(v);
          break;
        }
        case ColumnType::kDouble: {
          double v = 0;
          if (!Get(&in, &v)) return bad(short_row);
          if (!std::isfinite(v)) return bad("NaN or infinite value in column '" + rec[k].second + "'");
          if (c != nullptr) c->doubles.push_back(v);
          break;
        }
        case ColumnType::kString: {
          uint32_t len = 0;
          if (!Get(&in, &len) || in.size() < len) return bad(short_row);
          if (c != nullptr) {
            std::string v(in.substr(0, len));
            auto [it, added] = codes[target[k]].emplace(v, static_cast<int32_t>(c->dictionary.size()));
            if (added) c->dictionary.push_back(std::move(v));
            c->codes.push_back(it->second);
          }
          in.remove_prefix(len);
          break;
        }
      }
    }
  }
  if (!in.empty()) return bad("trailing bytes after " + std::to_string(rows) + " rows");
  for (Column& c : columns) c.IndexDictionary();
  return std::make_unique<Table>(schema, std::move(columns), rows);
}

// Walks the records of `data` from offset `from`: their payloads, and in *end the offset where
// the valid records end. What follows *end (if anything) is a torn tail: a header cut short, a
// payload cut short behind an intact header, the last record with a wrong payload checksum, or
// zeros (a crash or power loss mid-append, never acknowledged). Any other damage is DataLoss.
Status ScanRecords(std::string_view data, size_t from, const std::string& path,
                   std::vector<std::string_view>* payloads, size_t* end) {
  size_t pos = from;
  while (pos < data.size()) {
    const std::string where = "append log '" + path + "' at byte " + std::to_string(pos);
    std::string_view head = data.substr(pos);
    const bool zeros = head.find_first_not_of('\0') == std::string_view::npos;
    if (head.size() < kHeader || zeros) break;
    uint32_t magic = 0, size = 0, crc = 0, header_crc = 0;
    Get(&head, &magic);
    Get(&head, &size);
    Get(&head, &crc);
    Get(&head, &header_crc);
    if (Crc32(data.data() + pos, 12) != header_crc || magic != kMagic) {
      return Status::DataLoss(where + ": damaged record header");
    }
    if (head.size() < size) break;  // the payload was cut short
    if (Crc32(head.data(), size) != crc) {
      if (pos + kHeader + size == data.size()) break;  // the last record, never synced whole
      return Status::DataLoss(where + ": damaged record (checksum mismatch) before the end of the log");
    }
    if (payloads != nullptr) payloads->push_back(head.substr(0, size));
    pos += kHeader + size;
  }
  *end = pos;
  return Status::Ok();
}

Result<std::string> ReadFrom(int fd, size_t from, const std::string& path) {
  std::string data;
  char buf[65536];
  off_t off = static_cast<off_t>(from);
  while (true) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError("cannot read append log '" + path + "': " + std::strerror(errno));
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return data;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

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
  Fd f{::open(path_.c_str(), O_RDWR | O_CLOEXEC)};
  bool writable = true;
  if (f.fd < 0 && (errno == EACCES || errno == EROFS)) {
    f.fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    writable = false;
  }
  if (f.fd < 0) {
    if (errno == ENOENT) return out;
    return Status::IoError("cannot open append log '" + path_ + "': " + std::strerror(errno));
  }
  // Under the writers' lock: a record being appended right now is not mistaken for a torn one.
  if (::flock(f.fd, writable ? LOCK_EX : LOCK_SH) != 0) {
    return Status::IoError("cannot lock append log '" + path_ + "': " + std::strerror(errno));
  }
  APX_ASSIGN_OR_RETURN(std::string data, ReadFrom(f.fd, 0, path_));
  std::vector<std::string_view> payloads;
  size_t end = 0;
  APX_RETURN_IF_ERROR(ScanRecords(data, 0, path_, &payloads, &end));
  if (end < data.size()) {
    std::fprintf(stderr, "apxserve: append log '%s': dropping a torn last record at byte %zu (%zu bytes, never acknowledged)\n",
                 path_.c_str(), end, data.size() - end);
    if (writable && ::ftruncate(f.fd, static_cast<off_t>(end)) != 0) {
      return Status::IoError("cannot truncate append log '" + path_ + "': " + std::strerror(errno));
    }
  }
  size_t pos = 0;
  for (std::string_view payload : payloads) {
    APX_ASSIGN_OR_RETURN(auto table, Decode(payload, schema_, "append log '" + path_ + "' record " + std::to_string(pos++)));
    out.push_back(std::move(table));
  }
  return out;
}

Status AppendLog::Append(const Table& rows) {
  APX_RETURN_IF_ERROR(CheckTableMatches(rows, schema_));
  for (const Column& c : rows.columns()) {
    for (double v : c.doubles) {
      if (!std::isfinite(v)) return Status::InvalidArgument("NaN or infinite value in column '" + c.name + "'");
    }
    if (c.type == ColumnType::kTimestamp) {
      for (int64_t v : c.ints) {
        if (!ValidTimestamp(v)) return Status::InvalidArgument("timestamp out of range in column '" + c.name + "'");
      }
    }
  }
  const std::string payload = Encode(rows, schema_);
  std::string record;
  Put<uint32_t>(&record, kMagic);
  Put<uint32_t>(&record, static_cast<uint32_t>(payload.size()));
  Put<uint32_t>(&record, Crc32(payload.data(), payload.size()));
  Put<uint32_t>(&record, Crc32(record.data(), 12));
  record += payload;
  std::lock_guard<std::mutex> lock(mu_);
  if (broken_) return Status::IoError("append log '" + path_ + "' could not be restored after a failed write; restart");
  auto io_error = [&](const char* what, int err) {
    return Status::IoError("append log '" + path_ + "': " + what + ": " + std::strerror(err));
  };
  const bool existed = ::access(path_.c_str(), F_OK) == 0;
  Fd f{::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644)};
  if (f.fd < 0) return io_error("cannot open", errno);
  if (!existed) {
    // The new file's directory entry must be durable too.
    const std::string dir = path_.find('/') == std::string::npos ? "." : path_.substr(0, path_.rfind('/') + 1);
    Fd d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (d.fd < 0 || ::fsync(d.fd) != 0) return io_error("cannot sync its folder", errno);
  }
  if (::flock(f.fd, LOCK_EX) != 0) return io_error("cannot lock", errno);
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) return io_error("cannot stat", errno);
  size_t size = static_cast<size_t>(st.st_size);
  if (size != verified_size_) {
    // Records another writer appended (or a torn one it left when it died, holding the lock
    // no longer): checked, and a torn tail cut off, before ours follows.
    const size_t from = size > verified_size_ ? verified_size_ : 0;
    APX_ASSIGN_OR_RETURN(std::string tail, ReadFrom(f.fd, from, path_));
    size_t end = 0;
    APX_RETURN_IF_ERROR(ScanRecords(tail, 0, path_, nullptr, &end));
    if (from + end < size) {
      if (::ftruncate(f.fd, static_cast<off_t>(from + end)) != 0) return io_error("cannot cut a torn record", errno);
      size = from + end;
    }
    verified_size_ = size;
  }
  size_t todo = record.size();
  const bool tear = tear_next_ >= 0;
  if (tear) todo = std::min(todo, static_cast<size_t>(tear_next_));
  size_t done = 0;
  int err = 0;
  while (done < todo) {
    const ssize_t n = ::write(f.fd, record.data() + done, todo - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (tear) {
    // As a crash mid-append leaves it: the bytes stay, nothing is acknowledged.
    tear_next_ = -1;
    ::fdatasync(f.fd);
    return Status::IoError("append log '" + path_ + "': torn for testing");
  }
  if (err == 0 && ::fdatasync(f.fd) != 0) err = errno;
  if (err != 0) {
    // Not acknowledged: take the bytes back, so that they are neither replayed nor followed.
    if (::ftruncate(f.fd, static_cast<off_t>(verified_size_)) != 0 || ::fdatasync(f.fd) != 0) broken_ = true;
    return io_error("cannot write", err);
  }
  verified_size_ += record.size();
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
