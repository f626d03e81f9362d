// Fuzzes CSV ingest (ParseCsv) against a schema with every column type and a time column.
#include <cstddef>
#include <cstdint>
#include <string>

#include "store/table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const apx::store::TableSchema schema{
      .name = "t",
      .columns = {{"t", apx::store::ColumnType::kTimestamp},
                  {"x", apx::store::ColumnType::kDouble},
                  {"n", apx::store::ColumnType::kInt64},
                  {"k", apx::store::ColumnType::kString}},
      .time_column = "t"};
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto table = apx::store::ParseCsv(text, "fuzz.csv", schema);
  if (table.ok()) (void)(*table)->num_rows();
  return 0;
}
