// Fuzzes pipeline spec parsing (YAML -> PipelineSpec): every input is a spec or an error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "pipeline/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto spec = apx::pipeline::ParseSpec(text, "fuzz/spec.yaml");
  if (spec.ok()) (void)spec->FeatureNames();
  return 0;
}
