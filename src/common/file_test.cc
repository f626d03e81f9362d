// WriteFileAtomically and its guards: nothing the user owns is replaced, nothing half-written.
#include "common/file.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace apx {
namespace {

namespace fs = std::filesystem;

std::string Dir() {
  const fs::path dir = fs::temp_directory_path() / ("apx_file_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir.string();
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool StartsWithMagic(std::string_view head) { return head.substr(0, 5) == "MAGIC"; }

TEST(FileTest, WritesReplacesAndCreatesFolders) {
  const std::string path = Dir() + "/a/b/out.txt";
  ASSERT_TRUE(WriteFileAtomically(path, "one").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "two").ok());
  EXPECT_EQ(Read(path), "two");
  // A bare file name has no folder to create (this once aborted in create_directories("")).
  const std::string bare = "apx_file_test_" + std::to_string(::getpid()) + ".txt";
  EXPECT_TRUE(WriteFileAtomically(bare, "x").ok());
  fs::remove(bare);
}

// `snapshot: /dev/null` replaced the device node; a FIFO stands in for it here.
TEST(FileTest, NeverReplacesNonRegularFilesOrForeignContents) {
  const std::string dir = Dir();
  const std::string fifo = dir + "/fifo";
  fs::remove(fifo);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Status s = WriteFileAtomically(fifo, "x");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_EQ(WriteFileAtomically(dir, "x").code(), StatusCode::kFailedPrecondition);
  const std::string mine = dir + "/mine.bin";
  const std::string users = dir + "/users.bin";
  ASSERT_TRUE(WriteFileAtomically(mine, "MAGIC 1").ok());
  EXPECT_TRUE(WriteFileAtomically(mine, "MAGIC 2", "thing", StartsWithMagic).ok());
  std::ofstream(users) << "the user's";
  s = WriteFileAtomically(users, "MAGIC 3", "thing", StartsWithMagic);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("is not a thing written by apxserve"), std::string::npos) << s.message();
  EXPECT_EQ(Read(users), "the user's");
}

TEST(FileTest, StaleTemporariesOfDeadProcessesAreRemoved) {
  const std::string path = Dir() + "/t.json";
  const std::string stale = path + ".tmp.4000000";  // above the default pid_max
  const std::string stale_xgb = path + ".tmp.4000001.140000000";
  const std::string unrelated = path + ".tmpfile";
  for (const std::string& p : {stale, stale_xgb, unrelated}) std::ofstream(p) << "x";
  ASSERT_TRUE(WriteFileAtomically(path, "{}").ok());
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_FALSE(fs::exists(stale_xgb));
  EXPECT_TRUE(fs::exists(unrelated));
}

}  // namespace
}  // namespace apx
