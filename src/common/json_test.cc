// ParseJson / DumpJson / DescribeJson: untrusted JSON in and out.
#include "common/json.h"

#include <gtest/gtest.h>

#include <string>

namespace apx {
namespace {

TEST(JsonTest, ParsesOrdinaryDocuments) {
  auto j = ParseJson(R"({"a": [1, 2.5, "x", null, true], "b": {"c": {}}})", "body");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ((*j)["a"].size(), 5u);
  EXPECT_TRUE((*j)["b"]["c"].is_object());
}

TEST(JsonTest, SyntaxErrorsNameThePosition) {
  auto j = ParseJson(R"({"a": )", "body");
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(j.status().message().find("body is not valid JSON"), std::string::npos);
  EXPECT_NE(j.status().message().find("column"), std::string::npos) << j.status().message();
  EXPECT_FALSE(ParseJson("", "body").ok());
  EXPECT_FALSE(ParseJson("1e999", "body").ok());  // number overflow
}

// 80,000 levels once crashed the server (the error message recursed in dump()).
TEST(JsonTest, DeepNestingIsRefusedWithoutRecursion) {
  const std::string deep = "{\"distance\": " + std::string(80'000, '[') + std::string(80'000, ']') + "}";
  auto j = ParseJson(deep, "body");
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("nested deeper than 64"), std::string::npos)
      << j.status().message();
  // At the limit it parses; one more level does not.
  EXPECT_TRUE(ParseJson(std::string(64, '[') + std::string(64, ']'), "x").ok());
  EXPECT_FALSE(ParseJson(std::string(65, '[') + std::string(65, ']'), "x").ok());
  EXPECT_FALSE(ParseJson(std::string(1'000'000, '['), "x").ok());  // unterminated too
}

TEST(JsonTest, DuplicateKeysAreRefused) {
  auto j = ParseJson(R"({"origin": "ORD", "origin": "LAX"})", "request");
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("duplicate key 'origin'"), std::string::npos)
      << j.status().message();
  // The same key in different objects is fine.
  EXPECT_TRUE(ParseJson(R"([{"a": 1}, {"a": 2}, {"b": {"a": 3}, "a": 4}])", "x").ok());
}

TEST(JsonTest, InvalidUtf8IsAnErrorInAndReplacedOut) {
  auto j = ParseJson("{\"origin\": \"\xff\xfe\"}", "request");
  ASSERT_FALSE(j.ok());
  // The message itself is valid UTF-8 (it can go into a JSON error body).
  const std::string message = j.status().message();
  EXPECT_EQ(SanitizeUtf8(message, message.size() + 10), message);
  nlohmann::json out = {{"path", std::string("/\xff\xc3(")}};
  std::string text;
  EXPECT_NO_THROW(text = DumpJson(out));
  EXPECT_NE(text.find("\xEF\xBF\xBD"), std::string::npos);
}

TEST(JsonTest, SanitizeUtf8KeepsValidTextAndCuts) {
  EXPECT_EQ(SanitizeUtf8("héllo €𝄞"), "héllo €𝄞");
  EXPECT_EQ(SanitizeUtf8("a\xffz"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(SanitizeUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");      // overlong '/'
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(SanitizeUtf8(std::string(500, 'x'), 10), "xxxxxxx...");
  EXPECT_EQ(SanitizeUtf8("ab€", 5), "ab€");
  EXPECT_EQ(SanitizeUtf8("a€€", 6), "a...");  // never cuts a character in half
}

TEST(JsonTest, DescribeNeverRecurses) {
  nlohmann::json deep = 1;
  for (int i = 0; i < 100'000; ++i) deep = nlohmann::json::array({std::move(deep)});
  EXPECT_EQ(DescribeJson(deep), "an array of 1 elements");
  EXPECT_EQ(DescribeJson(nlohmann::json::object()), "an object with 0 keys");
  EXPECT_EQ(DescribeJson("abc"), "\"abc\"");
  EXPECT_EQ(DescribeJson(std::string(100, 'y'), 10).size(), 10u);
}

}  // namespace
}  // namespace apx
