#include "serve/api_json.h"

#include <cmath>
#include <limits>
#include <unordered_map>
#include <vector>

#include "common/json.h"

namespace apx::serve {

nlohmann::json PredictionToJson(const pipeline::Pipeline& pipeline, const pipeline::Prediction& pred) {
  const pipeline::PipelineSpec& spec = pipeline.spec();
  nlohmann::json ratios = nlohmann::json::object();
  for (size_t q = 0; q < pipeline.queries().size() && q < pred.sample_ratio.size(); ++q) {
    const pipeline::FeatureSpec& f = spec.features[pipeline.queries()[q].spec_index];
    for (const pipeline::AggSpec& a : f.aggs) ratios[a.feature] = pred.sample_ratio[q];
  }
  nlohmann::json j = {{"pipeline", spec.name},
          {"prediction", pred.y},
          {"delta", pred.delta},
          {"tau", pred.tau},
          {"confidence", pred.confidence},
          {"meets_tau", pred.confidence >= pred.tau},
          {"rounds", pred.rounds},
          {"exact", pred.exact},
          {"cut_over", pred.cut_over},
          {"stopped", pipeline::StopReasonName(pred.stopped)},
          {"rows_read", pred.rows_read},
          {"rows_matching", pred.rows_matching},
          {"sample_ratios", ratios},
          {"latency_ms",
           {{"total", pred.total_ms},
            {"data", pred.data_ms},
            {"model", pred.model_ms},
            {"planner", pred.planner_ms}}}};
  if (pred.shards > 0) {
    j["shards"] = {{"total", pred.shards}, {"answered", pred.shards_answered}, {"strata_reread", pred.strata_reread}};
    j["exact_unavailable"] = pred.exact_unavailable;
  }
  return j;
}

nlohmann::json ServeResultToJson(const pipeline::Pipeline& pipeline, const ServeResult& result) {
  nlohmann::json j = PredictionToJson(pipeline, result.prediction);
  j["level"] = LevelName(result.level);
  j["planned_level"] = LevelName(result.planned_level);
  // Degraded by load control, or by shards that did not answer in time (strata missing). An
  // exact statement that was unavailable alone is not: the answer then sampled every shard and
  // carries its guarantee like any other.
  const pipeline::Prediction& pred = result.prediction;
  const bool partial = pred.shards > 0 && pred.shards_answered < pred.shards;
  j["degraded"] = result.outcome == Outcome::kDegraded || partial;
  std::string reason = result.reason;
  if (partial) {
    reason += std::string(reason.empty() ? "" : "; ") + "shards answered " + std::to_string(pred.shards_answered) +
              " of " + std::to_string(pred.shards) + (pred.exact_unavailable ? ", exact statement unavailable" : "");
  }
  j["degraded_reason"] = reason.empty() ? nlohmann::json() : nlohmann::json(reason);
  j["latency_ms"]["queue"] = result.queue_ms;
  j["latency_ms"]["service"] = result.prediction.total_ms;
  j["latency_ms"]["total"] = result.total_ms;
  return j;
}

Status ExtractServeOptions(nlohmann::json& object, ServeRequest* out) {
  if (!object.is_object()) return Status::InvalidArgument("request must be a JSON object");
  auto number = [&](const char* key, double* value, double lo, double hi, const char* range) -> Status {
    auto it = object.find(key);
    if (it == object.end()) return Status::Ok();
    if (!it->is_number()) {
      return Status::InvalidArgument(std::string("'") + key + "' must be a number, got " + DescribeJson(*it));
    }
    const double v = it->get<double>();
    if (!std::isfinite(v) || v < lo || v > hi) {
      return Status::InvalidArgument(std::string("'") + key + "' must be " + range + ", got " + DescribeJson(*it));
    }
    *value = v;
    object.erase(it);
    return Status::Ok();
  };
  APX_RETURN_IF_ERROR(number("delta", &out->delta, 0, std::numeric_limits<double>::max(),
                             "a finite number >= 0 (> 0 for regression)"));
  APX_RETURN_IF_ERROR(number("tau", &out->tau, 1e-9, 1 - 1e-9, "in (0, 1)"));
  APX_RETURN_IF_ERROR(number("deadline_ms", &out->deadline_ms, 1e-3, 600'000, "in [0.001, 600000]"));
  if (auto it = object.find("exact"); it != object.end()) {
    if (!it->is_boolean()) return Status::InvalidArgument("'exact' must be true or false, got " + DescribeJson(*it));
    out->exact = it->get<bool>();
    object.erase(it);
  }
  return Status::Ok();
}

nlohmann::json ErrorValue(int http_status, std::string_view code, std::string_view message) {
  return {{"error", {{"status", http_status}, {"code", code}, {"message", message}}}};
}

std::string ErrorJson(int http_status, std::string_view code, std::string_view message) {
  return DumpJson(ErrorValue(http_status, code, message));
}

int HttpStatusOf(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kFailedPrecondition: return 409;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

Result<std::unique_ptr<store::Table>> ParseRowsBody(std::string_view body, std::string_view content_type,
                                                    const store::TableSchema& schema, int64_t max_rows) {
  if (content_type.substr(0, 8) == "text/csv") {
    APX_ASSIGN_OR_RETURN(auto table, store::ParseCsv(body, "body", schema));
    if (table->num_rows() == 0) return Status::InvalidArgument("body: no rows");
    if (table->num_rows() > max_rows) {
      return Status::InvalidArgument("body: more than " + std::to_string(max_rows) + " rows in one request");
    }
    return table;
  }
  std::vector<store::Column> cols(schema.columns.size());
  for (size_t c = 0; c < cols.size(); ++c) {
    cols[c].name = schema.columns[c].name;
    cols[c].type = schema.columns[c].type;
  }
  std::vector<std::unordered_map<std::string, int32_t>> codes(cols.size());
  int64_t rows = 0, line_no = 0;
  size_t start = 0;
  while (start < body.size()) {
    size_t nl = body.find('\n', start);
    if (nl == std::string_view::npos) nl = body.size();
    std::string_view line = body.substr(start, nl - start);
    start = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    const std::string where = "body line " + std::to_string(line_no);
    APX_ASSIGN_OR_RETURN(nlohmann::json row, ParseJson(line, where, 2));
    if (!row.is_object()) return Status::InvalidArgument(where + ": expected an object, got " + DescribeJson(row));
    for (auto it = row.begin(); it != row.end(); ++it) {
      bool known = false;
      for (const store::ColumnSpec& c : schema.columns) known = known || c.name == it.key();
      if (!known) {
        return Status::InvalidArgument(where + ": table '" + schema.name + "' has no column '" +
                                       SanitizeUtf8(it.key(), 80) + "'");
      }
    }
    if (++rows > max_rows) {
      return Status::InvalidArgument("body: more than " + std::to_string(max_rows) + " rows in one request");
    }
    for (size_t c = 0; c < cols.size(); ++c) {
      const std::string& name = schema.columns[c].name;
      const auto v = row.find(name);
      if (v == row.end()) return Status::InvalidArgument(where + ": column '" + name + "' is missing");
      const std::string what = where + ": column '" + name + "'";
      switch (cols[c].type) {
        case store::ColumnType::kDouble: {
          if (!v->is_number()) return Status::InvalidArgument(what + ": expected a number, got " + DescribeJson(*v));
          const double d = v->get<double>();
          if (!std::isfinite(d)) return Status::InvalidArgument(what + ": not a finite number");
          cols[c].doubles.push_back(d);
          break;
        }
        case store::ColumnType::kInt64: {
          if (!v->is_number_integer()) return Status::InvalidArgument(what + ": expected an integer, got " + DescribeJson(*v));
          cols[c].ints.push_back(v->get<int64_t>());
          break;
        }
        case store::ColumnType::kTimestamp: {
          int64_t t = 0;
          if (v->is_number_integer()) {
            t = v->get<int64_t>();
          } else if (v->is_string()) {
            auto parsed = store::ParseTimestamp(v->get_ref<const std::string&>());
            if (!parsed.ok()) return Status::InvalidArgument(what + ": " + parsed.status().message());
            t = *parsed;
          } else {
            return Status::InvalidArgument(what + ": expected a timestamp string or epoch seconds, got " + DescribeJson(*v));
          }
          if (!store::ValidTimestamp(t)) return Status::InvalidArgument(what + ": timestamp out of range");
          cols[c].ints.push_back(t);
          break;
        }
        case store::ColumnType::kString: {
          if (!v->is_string()) return Status::InvalidArgument(what + ": expected a string, got " + DescribeJson(*v));
          const std::string& text = v->get_ref<const std::string&>();
          auto [it, inserted] = codes[c].try_emplace(text, static_cast<int32_t>(cols[c].dictionary.size()));
          if (inserted) cols[c].dictionary.push_back(text);
          cols[c].codes.push_back(it->second);
          break;
        }
      }
    }
  }
  if (rows == 0) return Status::InvalidArgument("body: no rows (JSON lines: one object per line)");
  for (store::Column& c : cols) c.IndexDictionary();
  return std::make_unique<store::Table>(schema, std::move(cols), rows);
}

}  // namespace apx::serve
