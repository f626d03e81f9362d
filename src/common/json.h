// common/json.h
//
// JSON that cannot take the process down. Every JSON text that comes from outside (HTTP bodies,
// `predict -r`, model files) is parsed with ParseJson, which rejects what nlohmann::json would
// accept silently or crash on later: nesting deeper than a limit (the parser is iterative, but
// recursive consumers such as dump() overflow the stack at ~80,000 levels) and duplicate keys
// in one object (the last one used to win without a word). Every JSON text that goes out is
// written with DumpJson, which replaces invalid UTF-8 (from a URL path, a pipeline name, an
// error message quoting raw bytes) by U+FFFD instead of throwing. DescribeJson renders a value
// for an error message without recursing into it.
//
// Thread safety: pure functions.
#ifndef APX_COMMON_JSON_H_
#define APX_COMMON_JSON_H_

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "common/status.h"

namespace apx {

// Deepest nesting ParseJson accepts by default (arrays and objects; a request is depth 1).
inline constexpr int kMaxJsonDepth = 64;

// Parses `text` as one JSON value. InvalidArgument, prefixed by `what` ("body", "request"),
// naming the problem: syntax error with its position, invalid UTF-8, a number out of range,
// nesting deeper than `max_depth`, or a key that occurs twice in one object.
Result<nlohmann::json> ParseJson(std::string_view text, std::string_view what,
                                 int max_depth = kMaxJsonDepth);

// j.dump() that never throws: invalid UTF-8 in strings becomes U+FFFD.
std::string DumpJson(const nlohmann::json& j);

// A short rendering for error messages: scalars as JSON (at most `max_chars`, then "..."),
// arrays and objects by their kind and size ("an array of 3 elements"), never recursing.
std::string DescribeJson(const nlohmann::json& j, size_t max_chars = 60);

// `s` with every invalid UTF-8 sequence replaced by U+FFFD and at most `max_bytes` bytes
// (cut on a character boundary, "..." appended), for quoting untrusted text in messages.
std::string SanitizeUtf8(std::string_view s, size_t max_bytes = 200);

}  // namespace apx

#endif  // APX_COMMON_JSON_H_
