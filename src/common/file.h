// common/file.h
//
// Writing small files so that a crash never leaves half of one: the text goes to a temporary
// file beside the target, which is flushed and renamed over it.
//
// Thread safety: safe to call concurrently for different paths.
#ifndef APX_COMMON_FILE_H_
#define APX_COMMON_FILE_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace apx {

// Writes `contents` to `path` atomically (temp file + rename), creating missing parent
// folders. IoError naming the path on failure; the temporary file is removed.
Status WriteFileAtomically(const std::string& path, std::string_view contents);

}  // namespace apx

#endif  // APX_COMMON_FILE_H_
