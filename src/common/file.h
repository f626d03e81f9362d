// common/file.h
//
// Writing files so that a crash never leaves half of one and nothing the user owns is ever
// replaced: the text goes to a temporary file beside the target (`<path>.tmp.<pid>`), which is
// flushed, fsync'ed and renamed over it, and the directory is fsync'ed. A target that exists
// must be a regular file (never a device, a directory or a symbolic link) and, for files with
// a known signature (snapshots, models), must carry it. Temporaries left by killed processes
// are removed by the next write to the same path.
//
// Thread safety: safe to call concurrently for different paths.
#ifndef APX_COMMON_FILE_H_
#define APX_COMMON_FILE_H_

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace apx {

// OK when `path` does not exist, or is a regular file whose contents satisfy `is_ours` (null:
// any regular file). FailedPrecondition naming the path, `what` it should be ("snapshot",
// "model file") and how to proceed otherwise.
using SignatureFn = bool (*)(std::string_view head);
Status CheckReplaceable(const std::string& path, std::string_view what, SignatureFn is_ours = nullptr);

// Creates the folders above `path` (none for a bare file name). IoError naming the folder.
Status CreateParentDirectories(const std::string& path);

// `<path>.tmp.<pid>` for this process.
std::string TemporaryPathFor(const std::string& path);
// Removes `<path>.tmp.<pid>[.*]` files whose process is gone (killed writers); returns how
// many were removed.
int RemoveStaleTemporaries(const std::string& path);

// Makes a finished temporary file durable and moves it over `path`: fsync of the file, rename,
// fsync of the directory. The temporary is removed on failure. IoError naming the path.
Status CommitTemporary(const std::string& tmp, const std::string& path);

// Writes `contents` to `path` atomically (temporary file + CommitTemporary), creating missing
// parent folders; CheckReplaceable(path, what, is_ours) first. IoError naming the path on
// failure; the temporary file is removed.
Status WriteFileAtomically(const std::string& path, std::string_view contents,
                           std::string_view what = "output file", SignatureFn is_ours = nullptr);

}  // namespace apx

#endif  // APX_COMMON_FILE_H_
