// YAML → PipelineSpec. The only file of pipeline/ that includes yaml-cpp; its exceptions are
// caught here and turned into Status messages naming the file, line and field.
#include "pipeline/spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "store/sampled_index.h"

namespace apx::pipeline {
namespace {

class SpecParser {
 public:
  explicit SpecParser(std::string path) : path_(std::move(path)) {}

  Status Error(const YAML::Node& node, const std::string& field, const std::string& msg) const {
    const int line = node.IsDefined() ? node.Mark().line + 1 : 0;
    return Status::InvalidArgument(path_ + (line > 0 ? ":" + std::to_string(line) : "") + ": " +
                                   field + ": " + msg);
  }

  // Rejects keys of `map` that are not in `allowed`.
  Status CheckKeys(const YAML::Node& map, const std::string& field,
                   std::initializer_list<const char*> allowed) const {
    if (!map.IsMap()) return Error(map, field, "expected a mapping");
    for (const auto& kv : map) {
      const std::string key = kv.first.as<std::string>();
      if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
        std::string list;
        for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        return Error(kv.first, field + "." + key, "unknown field (expected one of: " + list + ")");
      }
    }
    return Status::Ok();
  }

  Result<std::string> String(const YAML::Node& map, const char* key, const std::string& field,
                             bool required, std::string def = "") const {
    const YAML::Node node = map[key];
    if (!node.IsDefined() || node.IsNull()) {
      if (required) return Error(map, field + "." + key, "required field is missing");
      return def;
    }
    if (!node.IsScalar()) return Error(node, field + "." + key, "expected a scalar");
    return node.as<std::string>();
  }

  Result<double> Number(const YAML::Node& map, const char* key, const std::string& field,
                        bool required, double def = 0) const {
    const YAML::Node node = map[key];
    if (!node.IsDefined() || node.IsNull()) {
      if (required) return Error(map, field + "." + key, "required field is missing");
      return def;
    }
    const std::string text = node.IsScalar() ? node.as<std::string>() : "";
    double value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() ||
        !std::isfinite(value)) {
      return Error(node, field + "." + key, "expected a finite number, got '" + text + "'");
    }
    return value;
  }

  Result<int64_t> Time(const YAML::Node& map, const char* key, const std::string& field) const {
    APX_ASSIGN_OR_RETURN(std::string text, String(map, key, field, true));
    auto t = store::ParseTimestamp(text);
    if (!t.ok()) return Error(map[key], field + "." + key, t.status().message());
    return *t;
  }

  std::string Resolve(const std::string& dir, const std::string& p) const {
    if (p.empty() || std::filesystem::path(p).is_absolute()) return p;
    return (std::filesystem::path(dir) / p).lexically_normal().string();
  }

  Status ParseTables(const YAML::Node& node, PipelineSpec* spec) {
    if (!node.IsDefined()) return Error(node, "tables", "required field is missing");
    if (!node.IsMap() || node.size() == 0) return Error(node, "tables", "expected a non-empty mapping");
    for (const auto& kv : node) {
      const std::string name = kv.first.as<std::string>();
      const std::string field = "tables." + name;
      const YAML::Node t = kv.second;
      APX_RETURN_IF_ERROR(
          CheckKeys(t, field, {"csv", "generator", "snapshot", "time_column", "columns"}));
      TableSpec table;
      table.schema.name = name;
      if (t["generator"].IsDefined()) {
        const YAML::Node g = t["generator"];
        APX_RETURN_IF_ERROR(CheckKeys(g, field + ".generator", {"name", "table", "seed"}));
        if (t["csv"].IsDefined()) {
          return Error(t, field, "a table has either csv: or generator:, not both");
        }
        APX_ASSIGN_OR_RETURN(table.generator.name, String(g, "name", field + ".generator", true));
        APX_ASSIGN_OR_RETURN(table.generator.table, String(g, "table", field + ".generator", true));
        APX_ASSIGN_OR_RETURN(int64_t seed, Integer(g, "seed", field + ".generator", 1, 0, kMaxSeed));
        table.generator.seed = static_cast<uint64_t>(seed);
        APX_ASSIGN_OR_RETURN(std::string snap, String(t, "snapshot", field, true));
        table.snapshot = Resolve(spec->dir, snap);
      } else {
        APX_ASSIGN_OR_RETURN(std::string csv, String(t, "csv", field, true));
        table.csv = Resolve(spec->dir, csv);
        APX_ASSIGN_OR_RETURN(std::string snap, String(t, "snapshot", field, false));
        table.snapshot = snap.empty() ? table.csv + ".apxsnap" : Resolve(spec->dir, snap);
        if (std::filesystem::path(table.snapshot).lexically_normal() ==
            std::filesystem::path(table.csv).lexically_normal()) {
          return Error(t["snapshot"], field + ".snapshot",
                       "is the CSV itself; the snapshot needs its own file (default: <csv>.apxsnap)");
        }
      }
      APX_ASSIGN_OR_RETURN(table.schema.time_column, String(t, "time_column", field, false));
      const YAML::Node cols = t["columns"];
      if (!cols.IsDefined() || !cols.IsMap() || cols.size() == 0) {
        return Error(cols.IsDefined() ? cols : t, field + ".columns",
                     "expected a non-empty mapping of column: type");
      }
      for (const auto& c : cols) {
        auto type = store::ParseColumnType(c.second.as<std::string>());
        if (!type.ok()) {
          return Error(c.second, field + ".columns." + c.first.as<std::string>(),
                       type.status().message());
        }
        table.schema.columns.push_back({c.first.as<std::string>(), *type});
      }
      if (!table.schema.time_column.empty()) {
        auto it = std::find_if(table.schema.columns.begin(), table.schema.columns.end(),
                               [&](const auto& c) { return c.name == table.schema.time_column; });
        if (it == table.schema.columns.end() || it->type != store::ColumnType::kTimestamp) {
          return Error(t["time_column"], field + ".time_column",
                       "'" + table.schema.time_column + "' must be a timestamp column of the table");
        }
      }
      spec->tables.push_back(std::move(table));
    }
    return Status::Ok();
  }

  Status ParseRequest(const YAML::Node& node, PipelineSpec* spec) {
    if (!node.IsDefined()) return Error(node, "request", "required field is missing");
    APX_RETURN_IF_ERROR(CheckKeys(node, "request", {"time", "fields"}));
    const YAML::Node fields = node["fields"];
    if (!fields.IsDefined() || !fields.IsMap() || fields.size() == 0) {
      return Error(fields.IsDefined() ? fields : node, "request.fields",
                   "expected a non-empty mapping of field: type");
    }
    for (const auto& f : fields) {
      const std::string name = f.first.as<std::string>();
      const std::string type = f.second.as<std::string>();
      RequestField rf{name, FieldType::kNumber};
      if (type == "number" || type == "double") {
        rf.type = FieldType::kNumber;
      } else if (type == "string") {
        rf.type = FieldType::kString;
      } else if (type == "timestamp") {
        rf.type = FieldType::kTimestamp;
      } else {
        return Error(f.second, "request.fields." + name,
                     "unknown type '" + type + "' (expected number, string or timestamp)");
      }
      spec->request_fields.push_back(rf);
    }
    APX_ASSIGN_OR_RETURN(spec->time_field, String(node, "time", "request", false));
    if (!spec->time_field.empty()) {
      const RequestField* tf = spec->FindField(spec->time_field);
      if (tf == nullptr || tf->type != FieldType::kTimestamp) {
        return Error(node["time"], "request.time",
                     "'" + spec->time_field + "' must be a timestamp field of request.fields");
      }
    }
    return Status::Ok();
  }

  Result<AggSpec> ParseAgg(const YAML::Node& node, const std::string& field) {
    const std::string text = node.as<std::string>();
    AggSpec a;
    // "p90" / "p99.5" are quantile shorthands.
    if (text.size() > 1 && text[0] == 'p' && std::isdigit(static_cast<unsigned char>(text[1]))) {
      double pct = 0;
      auto [ptr, ec] = std::from_chars(text.data() + 1, text.data() + text.size(), pct);
      if (ec != std::errc() || ptr != text.data() + text.size() || pct <= 0 || pct >= 100) {
        return Error(node, field, "bad quantile '" + text + "' (expected e.g. p90)");
      }
      a.op = agg::AggOp::kQuantile;
      a.q = pct / 100.0;
      return a;
    }
    auto op = agg::ParseAggOp(text);
    if (!op.ok()) return Error(node, field, op.status().message() + " (or pNN for a quantile)");
    if (*op == agg::AggOp::kQuantile) {
      return Error(node, field, "write a quantile as pNN, e.g. p90");
    }
    a.op = *op;
    return a;
  }

  Status ParseFeatures(const YAML::Node& node, PipelineSpec* spec) {
    if (!node.IsDefined() || !node.IsSequence() || node.size() == 0) {
      return Error(node, "features", "expected a non-empty list");
    }
    std::set<std::string> names;
    for (size_t i = 0; i < node.size(); ++i) {
      const YAML::Node f = node[i];
      const std::string field = "features[" + std::to_string(i) + "]";
      APX_RETURN_IF_ERROR(CheckKeys(f, field, {"name", "field", "transform", "table", "column",
                                               "keys", "window", "agg", "aggs"}));
      FeatureSpec fs;
      fs.line = f.Mark().line + 1;
      APX_ASSIGN_OR_RETURN(fs.name, String(f, "name", field, true));
      APX_ASSIGN_OR_RETURN(fs.field, String(f, "field", field, false));
      if (!fs.field.empty()) {
        if (f["table"].IsDefined() || f["agg"].IsDefined() || f["aggs"].IsDefined()) {
          return Error(f, field, "a feature is either a request field or an aggregation, not both");
        }
        const RequestField* rf = spec->FindField(fs.field);
        if (rf == nullptr) {
          return Error(f["field"], field + ".field", "'" + fs.field + "' is not a request field");
        }
        APX_ASSIGN_OR_RETURN(std::string tr, String(f, "transform", field, false, "none"));
        if (tr == "none") {
          fs.transform = Transform::kNone;
        } else if (tr == "hour_of_day") {
          fs.transform = Transform::kHourOfDay;
        } else if (tr == "day_of_week") {
          fs.transform = Transform::kDayOfWeek;
        } else if (tr == "day_of_year") {
          fs.transform = Transform::kDayOfYear;
        } else {
          return Error(f["transform"], field + ".transform",
                       "unknown transform '" + tr + "' (expected none, hour_of_day, day_of_week, day_of_year)");
        }
        if (rf->type == FieldType::kString) {
          return Error(f["field"], field + ".field",
                       "string field '" + fs.field + "' cannot be a model feature (use it as a key)");
        }
        if (fs.transform != Transform::kNone && rf->type != FieldType::kTimestamp) {
          return Error(f["transform"], field + ".transform", "needs a timestamp field");
        }
        if (!names.insert(fs.name).second) {
          return Error(f["name"], field + ".name", "duplicate feature name '" + fs.name + "'");
        }
        spec->features.push_back(std::move(fs));
        continue;
      }
      // Aggregation query.
      APX_ASSIGN_OR_RETURN(fs.table, String(f, "table", field, true));
      const TableSpec* table = spec->FindTable(fs.table);
      if (table == nullptr) {
        return Error(f["table"], field + ".table", "unknown table '" + fs.table + "'");
      }
      auto has_column = [&](const std::string& c) {
        return std::any_of(table->schema.columns.begin(), table->schema.columns.end(),
                           [&](const auto& col) { return col.name == c; });
      };
      APX_ASSIGN_OR_RETURN(fs.column, String(f, "column", field, true));
      if (!has_column(fs.column)) {
        return Error(f["column"], field + ".column",
                     "table '" + fs.table + "' has no column '" + fs.column + "'");
      }
      if (f["keys"].IsDefined()) {
        const YAML::Node keys = f["keys"];
        if (!keys.IsMap()) return Error(keys, field + ".keys", "expected a mapping column: request field");
        for (const auto& kv : keys) {
          const std::string col = kv.first.as<std::string>();
          const std::string req = kv.second.as<std::string>();
          if (!has_column(col)) {
            return Error(kv.first, field + ".keys." + col,
                         "table '" + fs.table + "' has no column '" + col + "'");
          }
          const RequestField* rf = spec->FindField(req);
          if (rf == nullptr) {
            return Error(kv.second, field + ".keys." + col, "'" + req + "' is not a request field");
          }
          // Keys are matched as strings: a number field would silently match nothing.
          const auto column = std::find_if(table->schema.columns.begin(), table->schema.columns.end(),
                                           [&](const auto& c) { return c.name == col; });
          if (column->type != store::ColumnType::kString || rf->type != FieldType::kString) {
            return Error(kv.second, field + ".keys." + col,
                         "keys pair a string column with a string request field ('" + col + "' is " +
                             std::string(store::ColumnTypeName(column->type)) + ", '" + req + "' is " +
                             (rf->type == FieldType::kString ? "string" : rf->type == FieldType::kNumber ? "number" : "timestamp") + ")");
          }
          fs.keys.emplace_back(col, req);
        }
        if (fs.keys.size() > store::kMaxKeyColumns) {
          return Error(keys, field + ".keys",
                       "at most " + std::to_string(store::kMaxKeyColumns) + " key columns");
        }
      }
      if (f["window"].IsDefined()) {
        const YAML::Node w = f["window"];
        APX_RETURN_IF_ERROR(CheckKeys(w, field + ".window", {"from", "to"}));
        if (table->schema.time_column.empty()) {
          return Error(w, field + ".window", "table '" + fs.table + "' has no time_column");
        }
        if (spec->time_field.empty()) {
          return Error(w, field + ".window", "a window needs request.time");
        }
        APX_ASSIGN_OR_RETURN(std::string from, String(w, "from", field + ".window", true));
        // Point in time: a window on a time-ordered table states where it ends. Rows just before
        // the request may not be known yet then (a flight's arrival delay is known once it has
        // landed), so `to` is never assumed; `to: 0` asks for everything before the request.
        if (!w["to"].IsDefined()) {
          return Error(w, field + ".window",
                       "a window needs `to`: the latest time before the request whose rows are known then "
                       "(e.g. -6h when a row's value is only known hours after its time; `to: 0` to use every "
                       "row before the request)");
        }
        APX_ASSIGN_OR_RETURN(std::string to, String(w, "to", field + ".window", true));
        auto df = from == "-inf" ? Result<int64_t>(kWindowUnbounded) : store::ParseDuration(from);
        if (!df.ok()) {
          return Error(w["from"], field + ".window.from",
                       df.status().message() + " or -inf (no lower bound)");
        }
        auto dt = store::ParseDuration(to);
        if (!dt.ok()) return Error(w["to"], field + ".window.to", dt.status().message());
        if (*dt > 0) {
          return Error(w["to"], field + ".window.to",
                       "a window must not look past the request time (to <= 0)");
        }
        if (*df >= *dt) return Error(w, field + ".window", "from must be before to");
        fs.window_from = *df;
        fs.window_to = *dt;
        fs.has_window = true;
      }
      const YAML::Node one = f["agg"], many = f["aggs"];
      if (one.IsDefined() == many.IsDefined()) {
        return Error(f, field, "an aggregation needs exactly one of agg: or aggs:");
      }
      if (one.IsDefined()) {
        APX_ASSIGN_OR_RETURN(AggSpec a, ParseAgg(one, field + ".agg"));
        a.feature = fs.name;
        fs.aggs.push_back(a);
      } else {
        if (!many.IsSequence() || many.size() == 0) {
          return Error(many, field + ".aggs", "expected a non-empty list");
        }
        for (size_t j = 0; j < many.size(); ++j) {
          APX_ASSIGN_OR_RETURN(AggSpec a,
                               ParseAgg(many[j], field + ".aggs[" + std::to_string(j) + "]"));
          a.feature = fs.name + "_" + many[j].as<std::string>();
          fs.aggs.push_back(a);
        }
      }
      for (const AggSpec& a : fs.aggs) {
        if (!names.insert(a.feature).second) {
          return Error(f["name"], field + ".name", "duplicate feature name '" + a.feature + "'");
        }
      }
      spec->features.push_back(std::move(fs));
    }
    return Status::Ok();
  }

  Result<RequestSetSpec> ParseRequestSet(const YAML::Node& node, const std::string& field,
                                         const PipelineSpec& spec) {
    if (!node.IsDefined()) return Error(node, field, "required field is missing");
    APX_RETURN_IF_ERROR(CheckKeys(node, field, {"table", "from", "to", "n", "seed"}));
    RequestSetSpec r;
    APX_ASSIGN_OR_RETURN(r.table, String(node, "table", field, true));
    if (spec.FindTable(r.table) == nullptr) {
      return Error(node["table"], field + ".table", "unknown table '" + r.table + "'");
    }
    APX_ASSIGN_OR_RETURN(r.from, Time(node, "from", field));
    APX_ASSIGN_OR_RETURN(r.to, Time(node, "to", field));
    if (r.from >= r.to) return Error(node, field, "from must be before to");
    APX_ASSIGN_OR_RETURN(int64_t n, Integer(node, "n", field, 1000, 1, 10'000'000));
    r.n = static_cast<int>(n);
    APX_ASSIGN_OR_RETURN(int64_t seed, Integer(node, "seed", field, 1, 0, kMaxSeed));
    r.seed = static_cast<uint64_t>(seed);
    return r;
  }

  Result<PipelineSpec> Parse(const std::string& text) {
    YAML::Node root;
    APX_RETURN_IF_ERROR(CheckFlowDepth(text));
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      return Status::InvalidArgument(path_ + ":" + std::to_string(e.mark.line + 1) +
                                     ": YAML syntax error: " + e.msg);
    }
    try {
      APX_RETURN_IF_ERROR(CheckDuplicateKeys(root, 0));
      return ParseRoot(root);
    } catch (const YAML::Exception& e) {
      return Status::InvalidArgument(path_ + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
    }
  }

  // yaml-cpp parses recursively: flow collections ([ and {, one byte a level) nested deeper
  // than this are refused before it sees them. (Block nesting needs one more space of
  // indentation per level, so a spec-sized text cannot nest deeply that way.)
  static constexpr int kMaxYamlDepth = 64;
  Status CheckFlowDepth(const std::string& text) const {
    int depth = 0, line = 1;
    char quote = 0;
    bool comment = false;
    for (char c : text) {
      if (c == '\n') {
        ++line;
        comment = false;
        continue;
      }
      if (comment) continue;
      if (quote != 0) {
        if (c == quote) quote = 0;
        continue;
      }
      if (c == '"' || c == '\'') quote = c;
      else if (c == '#') comment = true;
      else if (c == '[' || c == '{') {
        if (++depth > kMaxYamlDepth) {
          return Status::InvalidArgument(path_ + ":" + std::to_string(line) + ": nested deeper than " +
                                         std::to_string(kMaxYamlDepth) + " levels");
        }
      } else if ((c == ']' || c == '}') && depth > 0) {
        --depth;
      }
    }
    return Status::Ok();
  }

  // yaml-cpp keeps one of two equal keys without a word; a spec must say each thing once.
  Status CheckDuplicateKeys(const YAML::Node& node, int depth) const {
    if (depth > kMaxYamlDepth) return Error(node, "spec", "nested deeper than 64 levels");
    if (node.IsMap()) {
      std::set<std::string> seen;
      for (const auto& kv : node) {
        if (kv.first.IsScalar() && !seen.insert(kv.first.Scalar()).second) {
          return Error(kv.first, kv.first.Scalar(), "duplicate key (each key may appear once per mapping)");
        }
        APX_RETURN_IF_ERROR(CheckDuplicateKeys(kv.second, depth + 1));
      }
    } else if (node.IsSequence()) {
      for (const auto& item : node) APX_RETURN_IF_ERROR(CheckDuplicateKeys(item, depth + 1));
    }
    return Status::Ok();
  }

  // An integer field in [lo, hi] (no fraction, no exponent overflow, no silent cast).
  Result<int64_t> Integer(const YAML::Node& map, const char* key, const std::string& field, int64_t def,
                          int64_t lo, int64_t hi) const {
    APX_ASSIGN_OR_RETURN(double value, Number(map, key, field, false, static_cast<double>(def)));
    if (value != std::floor(value) || value < static_cast<double>(lo) || value > static_cast<double>(hi)) {
      return Error(map[key], field + "." + key,
                   "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got '" +
                       (map[key].IsScalar() ? map[key].Scalar() : std::string("?")) + "'");
    }
    return static_cast<int64_t>(value);
  }
  static constexpr int64_t kMaxSeed = int64_t{1} << 53;  // exact in a double

  // backend: embedded (the default) | {type: clickhouse, url: http://host:port, database: db,
  // cluster: name}. url may be left out: APX_CLICKHOUSE_URL then gives it (at open time).
  Status ParseBackend(const YAML::Node& root, PipelineSpec* spec) const {
    const YAML::Node b = root["backend"];
    if (!b.IsDefined()) return Status::Ok();
    if (b.IsScalar()) {
      if (b.Scalar() == "embedded") return Status::Ok();
      if (b.Scalar() != "clickhouse") {
        return Error(b, "backend", "unknown backend '" + b.Scalar() + "' (expected embedded or clickhouse)");
      }
      spec->backend.type = "clickhouse";
      return Status::Ok();
    }
    if (!b.IsMap()) return Error(b, "backend", "expected 'embedded', 'clickhouse' or a mapping");
    APX_RETURN_IF_ERROR(CheckKeys(b, "backend", {"type", "url", "database", "cluster", "shards", "shard_timeout_ms",
                                                    "late_factor", "late_slack_ms", "replica_reads",
                                                    "cut_over_reads"}));
    APX_ASSIGN_OR_RETURN(spec->backend.type, String(b, "type", "backend", true));
    if (spec->backend.type != "embedded" && spec->backend.type != "clickhouse") {
      return Error(b["type"], "backend.type", "unknown backend '" + spec->backend.type + "' (expected embedded or clickhouse)");
    }
    APX_ASSIGN_OR_RETURN(spec->backend.url, String(b, "url", "backend", false, ""));
    APX_ASSIGN_OR_RETURN(spec->backend.database, String(b, "database", "backend", false, "default"));
    APX_ASSIGN_OR_RETURN(spec->backend.cluster, String(b, "cluster", "backend", false, ""));
    const YAML::Node shards = b["shards"];
    if (shards.IsDefined()) {
      if (!shards.IsSequence()) return Error(shards, "backend.shards", "expected a list of urls");
      for (const YAML::Node& u : shards) {
        // A shard: its url, or its replicas' urls (a list, the first read first).
        std::string entry;
        if (u.IsSequence() && u.size() > 0) {
          for (const YAML::Node& r : u) {
            if (!r.IsScalar() || r.Scalar().empty() || r.Scalar().find('|') != std::string::npos) {
              return Error(r, "backend.shards", "expected a replica's url");
            }
            entry += (entry.empty() ? "" : "|") + r.Scalar();
          }
        } else if (u.IsScalar() && !u.Scalar().empty() && u.Scalar().find('|') == std::string::npos) {
          entry = u.Scalar();
        } else {
          return Error(u, "backend.shards", "expected a url or a list of a shard's replicas' urls");
        }
        spec->backend.shards.push_back(entry);
      }
      if (spec->backend.cluster.empty()) return Error(shards, "backend.shards", "shards only apply with a cluster");
    }
    if (b["shard_timeout_ms"].IsDefined()) {
      APX_ASSIGN_OR_RETURN(double ms, Number(b, "shard_timeout_ms", "backend", false, 2000));
      if (!(ms >= 1 && ms <= 600000)) return Error(b["shard_timeout_ms"], "backend.shard_timeout_ms", "must be in [1, 600000]");
      if (spec->backend.cluster.empty()) return Error(b["shard_timeout_ms"], "backend.shard_timeout_ms", "only applies with a cluster");
      spec->backend.shard_timeout_ms = static_cast<int>(ms);
    }
    if (b["late_factor"].IsDefined()) {
      APX_ASSIGN_OR_RETURN(double f, Number(b, "late_factor", "backend", false, 2));
      if (!(f == 0 || (f >= 1 && f <= 1000))) return Error(b["late_factor"], "backend.late_factor", "must be 0 (wait for every shard) or in [1, 1000]");
      if (spec->backend.cluster.empty()) return Error(b["late_factor"], "backend.late_factor", "only applies with a cluster");
      spec->backend.late_factor = f;
    }
    if (b["late_slack_ms"].IsDefined()) {
      APX_ASSIGN_OR_RETURN(double ms, Number(b, "late_slack_ms", "backend", false, 5));
      if (!(ms >= 0 && ms <= 600000)) return Error(b["late_slack_ms"], "backend.late_slack_ms", "must be in [0, 600000]");
      if (spec->backend.cluster.empty()) return Error(b["late_slack_ms"], "backend.late_slack_ms", "only applies with a cluster");
      spec->backend.late_slack_ms = ms;
    }
    if (b["replica_reads"].IsDefined()) {
      APX_ASSIGN_OR_RETURN(spec->backend.replica_reads, String(b, "replica_reads", "backend", false, "hedge"));
      if (spec->backend.replica_reads != "hedge" && spec->backend.replica_reads != "all") {
        return Error(b["replica_reads"], "backend.replica_reads", "expected hedge or all");
      }
      if (spec->backend.cluster.empty()) return Error(b["replica_reads"], "backend.replica_reads", "only applies with a cluster");
    }
    if (b["cut_over_reads"].IsDefined()) {
      APX_ASSIGN_OR_RETURN(spec->backend.cut_over_reads, String(b, "cut_over_reads", "backend", false, "auto"));
      const std::string& r = spec->backend.cut_over_reads;
      if (r != "auto" && r != "statement" && r != "sampled") {
        return Error(b["cut_over_reads"], "backend.cut_over_reads", "expected auto, statement or sampled");
      }
      if (spec->backend.type != "clickhouse") {
        return Error(b["cut_over_reads"], "backend.cut_over_reads", "only applies to type clickhouse");
      }
    }
    if (spec->backend.type == "embedded" && (!spec->backend.url.empty() || !spec->backend.cluster.empty())) {
      return Error(b, "backend", "url and cluster only apply to type clickhouse");
    }
    return Status::Ok();
  }

  Result<PipelineSpec> ParseRoot(const YAML::Node& root) {
    if (!root.IsMap()) return Status::InvalidArgument(path_ + ": expected a YAML mapping at the top");
    APX_RETURN_IF_ERROR(CheckKeys(root, "spec", {"name", "task", "tables", "request", "features",
                                                 "model", "train", "test", "label", "guarantee",
                                                 "backend"}));
    PipelineSpec spec;
    spec.path = path_;
    spec.dir = std::filesystem::path(path_).parent_path().string();
    APX_ASSIGN_OR_RETURN(spec.name, String(root, "name", "spec", true));
    APX_ASSIGN_OR_RETURN(std::string task, String(root, "task", "spec", true));
    auto t = model::ParseTask(task);
    if (!t.ok()) return Error(root["task"], "task", t.status().message());
    spec.task = *t;
    APX_RETURN_IF_ERROR(ParseTables(root["tables"], &spec));
    APX_RETURN_IF_ERROR(ParseBackend(root, &spec));
    APX_RETURN_IF_ERROR(ParseRequest(root["request"], &spec));
    APX_RETURN_IF_ERROR(ParseFeatures(root["features"], &spec));

    const YAML::Node m = root["model"];
    if (!m.IsDefined()) return Error(root, "model", "required field is missing");
    APX_RETURN_IF_ERROR(CheckKeys(
        m, "model", {"path", "booster", "trees", "max_depth", "eta", "scale_pos_weight", "hidden"}));
    APX_ASSIGN_OR_RETURN(std::string model_path, String(m, "path", "model", true));
    spec.model.path = Resolve(spec.dir, model_path);
    APX_ASSIGN_OR_RETURN(spec.model.booster, String(m, "booster", "model", false, "gbtree"));
    if (spec.model.booster != "gbtree" && spec.model.booster != "rf" &&
        spec.model.booster != "gblinear" && spec.model.booster != "ols" &&
        spec.model.booster != "mlp") {
      return Error(m["booster"], "model.booster",
                   "unknown booster '" + spec.model.booster +
                       "' (expected gbtree, rf, gblinear, ols or mlp)");
    }
    const bool mlp = spec.model.booster == "mlp";
    APX_ASSIGN_OR_RETURN(double trees, Number(m, "trees", "model", false, 100));
    APX_ASSIGN_OR_RETURN(double depth, Number(m, "max_depth", "model", false, 6));
    APX_ASSIGN_OR_RETURN(spec.model.eta, Number(m, "eta", "model", false, mlp ? 0.01 : 0.1));
    if (!(spec.model.eta > 0)) return Error(m["eta"], "model.eta", "must be > 0");
    APX_ASSIGN_OR_RETURN(spec.model.scale_pos_weight, Number(m, "scale_pos_weight", "model", false, 1.0));
    if (!(spec.model.scale_pos_weight > 0)) {
      return Error(m["scale_pos_weight"], "model.scale_pos_weight", "must be > 0");
    }
    if (trees < 1 || trees > 10000) return Error(m["trees"], "model.trees", "expected 1..10000");
    if (depth < 1 || depth > 16) return Error(m["max_depth"], "model.max_depth", "expected 1..16");
    spec.model.trees = static_cast<int>(trees);
    spec.model.max_depth = static_cast<int>(depth);
    if (const YAML::Node hidden = m["hidden"]; hidden.IsDefined()) {
      if (!mlp) return Error(hidden, "model.hidden", "only for booster mlp");
      if (!hidden.IsSequence()) {
        return Error(hidden, "model.hidden", "expected a list of layer widths, e.g. [100, 100]");
      }
      spec.model.hidden.clear();
      for (size_t i = 0; i < hidden.size(); ++i) {
        const std::string text = hidden[i].IsScalar() ? hidden[i].as<std::string>() : "";
        int width = 0;
        auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), width);
        if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || width < 1 ||
            width > 100000) {
          return Error(hidden[i], "model.hidden[" + std::to_string(i) + "]",
                       "expected a layer width in 1..100000, got '" + text + "'");
        }
        spec.model.hidden.push_back(width);
      }
      // Weights between hidden layers (the input layer is at most a few hundred features):
      // beyond this the network would not fit in memory or train in any reasonable time.
      double weights = 0;
      for (size_t i = 1; i < spec.model.hidden.size(); ++i) {
        weights += static_cast<double>(spec.model.hidden[i - 1]) * spec.model.hidden[i];
      }
      if (weights > 20e6) {
        return Error(hidden, "model.hidden", "layers this wide need " + std::to_string(static_cast<int64_t>(weights)) +
                                                 " weights; at most 20,000,000");
      }
    }

    if (spec.model.booster == "ols" && spec.task != model::Task::kRegression) {
      return Error(m["booster"], "model.booster", "ols (least squares) is for regression tasks");
    }
    APX_ASSIGN_OR_RETURN(spec.train, ParseRequestSet(root["train"], "train", spec));
    APX_ASSIGN_OR_RETURN(spec.test, ParseRequestSet(root["test"], "test", spec));

    const YAML::Node l = root["label"];
    if (!l.IsDefined()) return Error(root, "label", "required field is missing");
    APX_RETURN_IF_ERROR(CheckKeys(l, "label", {"column", "greater_than"}));
    APX_ASSIGN_OR_RETURN(spec.label.column, String(l, "column", "label", true));
    if (l["greater_than"].IsDefined()) {
      APX_ASSIGN_OR_RETURN(double gt, Number(l, "greater_than", "label", true));
      spec.label.greater_than = gt;
    }
    if ((spec.task == model::Task::kBinary) != spec.label.greater_than.has_value()) {
      return Error(l, "label", spec.task == model::Task::kBinary
                                   ? "a binary task needs label.greater_than"
                                   : "label.greater_than is only for binary tasks");
    }

    const YAML::Node g = root["guarantee"];
    if (!g.IsDefined()) return Error(root, "guarantee", "required field is missing");
    APX_RETURN_IF_ERROR(CheckKeys(g, "guarantee", {"delta", "tau", "alpha", "gamma", "qmc_points", "seed", "cut_over", "strict", "confidence_margin"}));
    GuaranteeSpec& gs = spec.guarantee;
    APX_ASSIGN_OR_RETURN(gs.delta, Number(g, "delta", "guarantee", spec.task == model::Task::kRegression, 0));
    APX_ASSIGN_OR_RETURN(gs.tau, Number(g, "tau", "guarantee", false, 0.95));
    APX_ASSIGN_OR_RETURN(gs.alpha, Number(g, "alpha", "guarantee", false, 0.05));
    APX_ASSIGN_OR_RETURN(gs.gamma, Number(g, "gamma", "guarantee", false, 1.0));
    APX_ASSIGN_OR_RETURN(double qmc, Number(g, "qmc_points", "guarantee", false, 128));
    APX_ASSIGN_OR_RETURN(int64_t seed, Integer(g, "seed", "guarantee", 0, 0, kMaxSeed));
    APX_ASSIGN_OR_RETURN(gs.confidence_margin,
                         Number(g, "confidence_margin", "guarantee", false, kDefaultConfidenceMargin));
    if (!(gs.confidence_margin >= 0 && gs.confidence_margin <= 5)) {
      return Error(g["confidence_margin"], "guarantee.confidence_margin", "must be in [0, 5]");
    }
    if (spec.task == model::Task::kRegression && !(gs.delta > 0)) {
      return Error(g["delta"], "guarantee.delta", "must be > 0 for a regression task");
    }
    if (!(gs.tau > 0 && gs.tau < 1)) return Error(g["tau"], "guarantee.tau", "must be in (0, 1)");
    if (!(gs.alpha > 0 && gs.alpha <= 1)) return Error(g["alpha"], "guarantee.alpha", "must be in (0, 1]");
    if (!(gs.gamma > 0 && gs.gamma <= 100)) return Error(g["gamma"], "guarantee.gamma", "must be in (0, 100]");
    if (qmc < 8 || qmc > 65536 || qmc != std::floor(qmc)) {
      return Error(g["qmc_points"], "guarantee.qmc_points", "expected an integer in 8..65536");
    }
    gs.qmc_points = static_cast<int>(qmc);
    APX_ASSIGN_OR_RETURN(std::string cut, String(g, "cut_over", "guarantee", false, "true"));
    if (cut != "true" && cut != "false") {
      return Error(g["cut_over"], "guarantee.cut_over", "expected true or false");
    }
    gs.cut_over = cut == "true";
    APX_ASSIGN_OR_RETURN(std::string strict, String(g, "strict", "guarantee", false, "false"));
    if (strict != "true" && strict != "false") {
      return Error(g["strict"], "guarantee.strict", "expected true or false");
    }
    gs.strict = strict == "true";
    gs.seed = static_cast<uint64_t>(seed);
    return spec;
  }

 private:
  std::string path_;
};

}  // namespace

std::vector<std::string> PipelineSpec::FeatureNames() const {
  std::vector<std::string> names;
  for (const FeatureSpec& f : features) {
    if (!f.is_query()) {
      names.push_back(f.name);
    } else {
      for (const AggSpec& a : f.aggs) names.push_back(a.feature);
    }
  }
  return names;
}

const RequestField* PipelineSpec::FindField(std::string_view name) const {
  for (const RequestField& f : request_fields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

const TableSpec* PipelineSpec::FindTable(std::string_view name) const {
  for (const TableSpec& t : tables) {
    if (t.schema.name == name) return &t;
  }
  return nullptr;
}

namespace {

Status ApplyScale(PipelineSpec* spec, double scale) {
  if (!(scale > 0 && scale <= 10)) {
    return Status::InvalidArgument("scale must be in (0, 10], got " + std::to_string(scale));
  }
  spec->scale = scale;
  char text[32];
  std::snprintf(text, sizeof(text), "%g", scale);
  auto substitute = [&](std::string* path) {
    for (size_t pos = path->find("{scale}"); pos != std::string::npos; pos = path->find("{scale}")) {
      path->replace(pos, 7, text);
    }
  };
  for (TableSpec& t : spec->tables) substitute(&t.snapshot);
  substitute(&spec->model.path);
  return Status::Ok();
}

}  // namespace

Result<PipelineSpec> ParseSpec(const std::string& yaml_text, const std::string& path,
                               double scale) {
  APX_ASSIGN_OR_RETURN(PipelineSpec spec, SpecParser(path).Parse(yaml_text));
  APX_RETURN_IF_ERROR(ApplyScale(&spec, scale));
  return spec;
}


Result<PipelineSpec> LoadSpec(const std::string& path, double scale) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot open pipeline spec '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  return ParseSpec(text.str(), path, scale);
}

}  // namespace apx::pipeline
