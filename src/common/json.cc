#include "common/json.h"

#include <unordered_set>
#include <vector>

namespace apx {
namespace {

using Json = nlohmann::json;

// The DOM builder of nlohmann::json with two refusals: nesting deeper than max_depth and a key
// repeated in one object. Returning false from a SAX event stops the parse.
class StrictSax : public nlohmann::detail::json_sax_dom_parser<Json> {
 public:
  using Base = nlohmann::detail::json_sax_dom_parser<Json>;
  StrictSax(Json& root, int max_depth) : Base(root, /*allow_exceptions_=*/false), max_depth_(max_depth) {}

  bool start_object(std::size_t len) {
    if (!Enter()) return false;
    keys_.emplace_back();
    return Base::start_object(len);
  }
  bool key(Json::string_t& k) {
    if (!keys_.back().insert(k).second) {
      error_ = "duplicate key '" + SanitizeUtf8(k, 80) + "' in one object";
      return false;
    }
    return Base::key(k);
  }
  bool end_object() {
    keys_.pop_back();
    --depth_;
    return Base::end_object();
  }
  bool start_array(std::size_t len) {
    if (!Enter()) return false;
    return Base::start_array(len);
  }
  bool end_array() {
    --depth_;
    return Base::end_array();
  }
  template <class Exception>
  bool parse_error(std::size_t position, const std::string& token, const Exception& ex) {
    error_ = ex.what();
    return Base::parse_error(position, token, ex);
  }

  const std::string& error() const { return error_; }

 private:
  bool Enter() {
    if (++depth_ > max_depth_) {
      error_ = "nested deeper than " + std::to_string(max_depth_) + " levels";
      return false;
    }
    return true;
  }

  const int max_depth_;
  int depth_ = 0;
  std::vector<std::unordered_set<std::string>> keys_;
  std::string error_;
};

// Length of the valid UTF-8 sequence at s[i] (RFC 3629: no overlongs, no surrogates, at most
// U+10FFFF), or 0 when it is not one.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t len = 0;
  uint32_t cp = 0;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr uint32_t kMinOf[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinOf[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

}  // namespace

Result<nlohmann::json> ParseJson(std::string_view text, std::string_view what, int max_depth) {
  Json root;
  StrictSax sax(root, max_depth);
  bool ok = false;
  try {
    ok = Json::sax_parse(text.begin(), text.end(), &sax);
  } catch (const Json::exception& e) {  // defensive: the builder does not throw
    return Status::InvalidArgument(std::string(what) + " is not valid JSON: " + SanitizeUtf8(e.what()));
  }
  if (!ok || sax.is_errored()) {
    const std::string reason = sax.error().empty() ? "syntax error" : sax.error();
    return Status::InvalidArgument(std::string(what) + " is not valid JSON: " + SanitizeUtf8(reason));
  }
  return root;
}

std::string DumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string DescribeJson(const nlohmann::json& j, size_t max_chars) {
  if (j.is_array()) return "an array of " + std::to_string(j.size()) + " elements";
  if (j.is_object()) return "an object with " + std::to_string(j.size()) + " keys";
  std::string text = DumpJson(j);
  if (text.size() > max_chars) return SanitizeUtf8(text, max_chars);
  return text;
}

std::string SanitizeUtf8(std::string_view s, size_t max_bytes) {
  // Valid characters (or U+FFFD), remembering where each ends, until past max_bytes.
  std::string out;
  out.reserve(std::min(s.size(), max_bytes) + 4);
  size_t fits = 0;  // bytes of `out` that leave room for "..."
  size_t i = 0;
  while (i < s.size() && out.size() <= max_bytes) {
    const size_t len = Utf8SequenceLength(s, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
    if (out.size() + 3 <= max_bytes) fits = out.size();
  }
  if (i == s.size() && out.size() <= max_bytes) return out;
  out.resize(fits);
  out += "...";
  return out;
}

}  // namespace apx
