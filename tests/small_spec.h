// tests/small_spec.h: loading a generated pipeline's spec small, for tests that prepare it
// themselves (suite_test, stress_test).
#ifndef APX_TESTS_SMALL_SPEC_H_
#define APX_TESTS_SMALL_SPEC_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "pipeline/spec.h"

namespace apx::testing {

// A per-process temp folder named `prefix` + pid (created if missing).
inline std::string TempDir(const std::string& prefix) {
  auto dir = std::filesystem::temp_directory_path() / (prefix + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

// Loads the spec at `path` at `scale`, with its snapshots and model redirected into `dir`.
inline pipeline::PipelineSpec SmallSpec(const std::string& path, double scale,
                                        const std::string& dir) {
  auto spec = pipeline::LoadSpec(path, scale);
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  for (pipeline::TableSpec& t : spec->tables) {
    t.snapshot = dir + "/" + std::filesystem::path(t.snapshot).filename().string();
  }
  spec->model.path = dir + "/" + std::filesystem::path(spec->model.path).filename().string();
  return *spec;
}

}  // namespace apx::testing

#endif  // APX_TESTS_SMALL_SPEC_H_
