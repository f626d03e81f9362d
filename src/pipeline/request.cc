#include "pipeline/request.h"

#include <nlohmann/json.hpp>

#include <cmath>

#include "common/json.h"

namespace apx::pipeline {

Result<Request> ParseRequestJson(const PipelineSpec& spec, const std::string& json_text) {
  APX_ASSIGN_OR_RETURN(const nlohmann::json j, ParseJson(json_text, "request"));
  return ParseRequestValue(spec, j);
}

Result<Request> ParseRequestValue(const PipelineSpec& spec, const nlohmann::json& j) {
  if (!j.is_object()) return Status::InvalidArgument("request must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (spec.FindField(it.key()) == nullptr) {
      std::string names;
      for (const RequestField& f : spec.request_fields) names += (names.empty() ? "" : ", ") + f.name;
      return Status::InvalidArgument("unknown request field '" + SanitizeUtf8(it.key(), 80) + "' (pipeline '" +
                                     spec.name + "' expects: " + names + ")");
    }
  }
  Request r;
  r.numbers.assign(spec.request_fields.size(), 0.0);
  r.strings.assign(spec.request_fields.size(), std::string());
  for (size_t i = 0; i < spec.request_fields.size(); ++i) {
    const RequestField& f = spec.request_fields[i];
    auto it = j.find(f.name);
    if (it == j.end() || it->is_null()) {
      return Status::InvalidArgument("missing request field '" + f.name + "'");
    }
    switch (f.type) {
      case FieldType::kNumber: {
        if (!it->is_number()) {
          return Status::InvalidArgument("request field '" + f.name + "' must be a number, got " +
                                         DescribeJson(*it));
        }
        const double v = it->get<double>();
        if (!std::isfinite(v)) {
          return Status::InvalidArgument("request field '" + f.name + "' must be finite");
        }
        r.numbers[i] = v;
        break;
      }
      case FieldType::kTimestamp: {
        if (it->is_number_integer()) {
          // Epoch seconds within the timestamps' range (years 0000-9999): no wrap of huge
          // unsigned values, no overflow in window arithmetic.
          const bool in_range = it->is_number_unsigned()
                                    ? it->get<uint64_t>() <= static_cast<uint64_t>(store::kMaxTimestamp)
                                    : store::ValidTimestamp(it->get<int64_t>());
          if (!in_range) {
            return Status::InvalidArgument("request field '" + f.name + "': epoch seconds " + DescribeJson(*it) +
                                           " outside years 0000-9999");
          }
          r.numbers[i] = static_cast<double>(it->get<int64_t>());
        } else if (it->is_string()) {
          auto t = store::ParseTimestamp(it->get<std::string>());
          if (!t.ok()) {
            return Status::InvalidArgument("request field '" + f.name + "': " + t.status().message());
          }
          r.numbers[i] = static_cast<double>(*t);
        } else {
          return Status::InvalidArgument("request field '" + f.name +
                                         "' must be a timestamp string or epoch seconds, got " +
                                         DescribeJson(*it));
        }
        break;
      }
      case FieldType::kString: {
        if (!it->is_string()) {
          return Status::InvalidArgument("request field '" + f.name + "' must be a string, got " +
                                         DescribeJson(*it));
        }
        r.strings[i] = it->get<std::string>();
        break;
      }
    }
  }
  return r;
}

std::string RequestToJson(const PipelineSpec& spec, const Request& request) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t i = 0; i < spec.request_fields.size(); ++i) {
    const RequestField& f = spec.request_fields[i];
    switch (f.type) {
      case FieldType::kNumber: j[f.name] = request.numbers[i]; break;
      case FieldType::kTimestamp:
        j[f.name] = store::FormatTimestamp(static_cast<int64_t>(request.numbers[i]));
        break;
      case FieldType::kString: j[f.name] = request.strings[i]; break;
    }
  }
  return DumpJson(j);
}

}  // namespace apx::pipeline
