// Fuzzes snapshot loading behind the checksum (ParseSnapshot with verify_checksum = false):
// a crafted file with a valid checksum must be an error, never a crash or a huge allocation.
#include <cstddef>
#include <cstdint>
#include <string>

#include "store/table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  auto table = apx::store::ParseSnapshot(bytes, "fuzz.apxsnap", /*verify_checksum=*/false);
  if (table.ok()) {
    for (const apx::store::Column& c : (*table)->columns()) (void)c.name;
  }
  return 0;
}
