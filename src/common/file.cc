#include "common/file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace apx {
namespace fs = std::filesystem;

Status CheckReplaceable(const std::string& path, std::string_view what, SignatureFn is_ours) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::IoError("cannot inspect '" + path + "': " + std::strerror(errno));
  }
  const std::string refuse = "refusing to replace '" + path + "' with a " + std::string(what) + ": ";
  if (S_ISLNK(st.st_mode)) {
    return Status::FailedPrecondition(refuse + "it is a symbolic link (point the spec at the file itself)");
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::FailedPrecondition(refuse + "it is not a regular file (a directory or a device)");
  }
  if (is_ours == nullptr) return Status::Ok();
  std::ifstream in(path, std::ios::binary);
  std::string head(4096, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  if (!is_ours(head)) {
    return Status::FailedPrecondition(refuse + "it exists and is not a " + std::string(what) +
                                      " written by apxserve (move it away or choose another path)");
  }
  return Status::Ok();
}

Status CreateParentDirectories(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) return Status::Ok();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) return Status::IoError("cannot create folder '" + parent.string() + "': " + ec.message());
  return Status::Ok();
}

std::string TemporaryPathFor(const std::string& path) { return path + ".tmp." + std::to_string(::getpid()); }

int RemoveStaleTemporaries(const std::string& path) {
  const fs::path target(path);
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  int removed = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    // <prefix><pid>[.<anything>]
    const std::string rest = name.substr(prefix.size());
    char* end_ptr = nullptr;
    const long pid = std::strtol(rest.c_str(), &end_ptr, 10);
    if (end_ptr == rest.c_str() || (*end_ptr != '\0' && *end_ptr != '.') || pid <= 0) continue;
    if (pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // still running
    std::error_code rm;
    if (it->is_regular_file(rm) && fs::remove(it->path(), rm)) ++removed;
  }
  return removed;
}

Status CommitTemporary(const std::string& tmp, const std::string& path) {
  auto fail = [&](const std::string& why) {
    std::remove(tmp.c_str());
    return Status::IoError("cannot write '" + path + "': " + why);
  };
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd < 0) return fail(std::strerror(errno));
  const bool synced = ::fsync(fd) == 0;
  const int sync_errno = errno;
  ::close(fd);
  if (!synced) return fail(std::string("fsync: ") + std::strerror(sync_errno));
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return fail(std::strerror(errno));
  // Persist the rename itself.
  const std::string dir = fs::path(path).parent_path().string();
  const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return Status::Ok();
}

Status WriteFileAtomically(const std::string& path, std::string_view contents, std::string_view what,
                           SignatureFn is_ours) {
  APX_RETURN_IF_ERROR(CheckReplaceable(path, what, is_ours));
  APX_RETURN_IF_ERROR(CreateParentDirectories(path));
  RemoveStaleTemporaries(path);
  const std::string tmp = TemporaryPathFor(path);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return Status::IoError("cannot create '" + tmp + "': " + std::strerror(errno));
  bool ok = std::fwrite(contents.data(), 1, contents.size(), f) == contents.size();
  ok = std::fflush(f) == 0 && ok;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    return Status::IoError("cannot write '" + path + "': " + why);
  }
  return CommitTemporary(tmp, path);
}

}  // namespace apx
