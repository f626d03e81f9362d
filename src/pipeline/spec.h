// pipeline/spec.h
//
// The pipeline spec: what a user writes in YAML (docs/pipeline-spec.md) — tables, request
// fields, features (request fields and aggregation queries), model, the guarantee (δ, τ) and
// the planner's α, γ, plus the training and test request sets. LoadSpec parses and validates
// it; every error names the file, the line and the field.
//
// Thread safety: a PipelineSpec is a plain value.
#ifndef APX_PIPELINE_SPEC_H_
#define APX_PIPELINE_SPEC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agg/aggregate.h"
#include "common/status.h"
#include "model/model.h"
#include "store/table.h"

namespace apx::pipeline {

// A table made by one of the project's deterministic data generators (eval/generators.h)
// instead of read from a CSV: benchmark analogues of datasets that cannot be downloaded here.
struct GeneratorSpec {
  std::string name;   // the dataset generator, e.g. "bearing"
  std::string table;  // which of its tables, e.g. "signals"
  uint64_t seed = 1;
};

struct TableSpec {
  store::TableSchema schema;
  std::string csv;       // source CSV (absolute path, resolved against the spec's folder)
  std::string snapshot;  // binary snapshot path (default: <csv>.apxsnap); may hold "{scale}"
  GeneratorSpec generator;  // set (name non-empty) for generated tables; then csv is empty

  bool generated() const { return !generator.name.empty(); }
};

enum class FieldType { kNumber, kString, kTimestamp };

struct RequestField {
  std::string name;
  FieldType type = FieldType::kNumber;
};

enum class Transform { kNone, kHourOfDay, kDayOfWeek, kDayOfYear };

struct AggSpec {
  agg::AggOp op = agg::AggOp::kAvg;
  double q = 0.5;          // quantile level
  std::string feature;     // model feature name
};

// One entry of `features:`. Either a request feature (field != "") or an aggregation query.
inline constexpr int64_t kWindowUnbounded = INT64_MIN / 4;

struct FeatureSpec {
  std::string name;
  int line = 0;
  // Request feature.
  std::string field;
  Transform transform = Transform::kNone;
  // Aggregation query: SELECT op(column) FROM table WHERE key_col = request.field ... AND
  // time in [t + window_from, t + window_to), t = the request time; window_from ==
  // kWindowUnbounded (`from: -inf`) means no lower bound.
  std::string table;
  std::string column;
  std::vector<std::pair<std::string, std::string>> keys;  // (table column, request field)
  int64_t window_from = 0;
  int64_t window_to = 0;
  bool has_window = false;
  std::vector<AggSpec> aggs;

  bool is_query() const { return field.empty(); }
};

struct ModelSpec {
  std::string path;            // model file (XGBoost JSON), resolved against the spec's folder
  std::string booster = "gbtree";  // gbtree | rf | gblinear | ols | mlp
  int trees = 100;
  int max_depth = 6;
  double eta = 0.1;                // learning rate (mlp: Adam step size, default 0.01)
  std::vector<int> hidden = {100, 100};  // mlp: hidden layer widths
  double scale_pos_weight = 1.0;  // binary: weight of positive examples
};

struct RequestSetSpec {
  std::string table;
  int64_t from = 0;  // request times in [from, to)
  int64_t to = 0;
  int n = 1000;
  uint64_t seed = 1;
};

struct LabelSpec {
  std::string column;                  // label column of the request table
  std::optional<double> greater_than;  // binary label: column > threshold
};

// Default z of the confidence's Monte Carlo margin (docs/algorithms.md, "Confidence").
inline constexpr double kDefaultConfidenceMargin = 1.0;

struct GuaranteeSpec {
  double delta = 0;     // regression error bound (label units); ignored for binary
  double tau = 0.95;    // confidence level
  double alpha = 0.05;  // initial sample ratio
  double gamma = 1.0;   // granules per query per round
  int qmc_points = 128; // Sobol base points N (design has N·(G+2) rows)
  uint64_t seed = 0;    // QMC scramble and store strata seed
  // Switch to exact reading when it is cheaper than going on approximating (default). Off
  // forces the approximate path, e.g. to study the estimators on small data.
  bool cut_over = true;
  // Strict mode: round r must reach confidence 1 − (1 − τ)/2^(r+1) (the failure probability is
  // spent across rounds, Bonferroni-style), guarding against optional stopping.
  bool strict = false;
  // z of the one-sided lower bound the confidence must clear for its own Monte Carlo error
  // (uq::WilsonLower with the design's 2N independent points); 0 compares the point estimate.
  double confidence_margin = kDefaultConfidenceMargin;
};

// Where the tables' rows live for feature queries (docs/clickhouse.md).
struct BackendSpec {
  std::string type = "embedded";  // embedded | clickhouse
  std::string url;                 // clickhouse: http://host:port; empty: $APX_CLICKHOUSE_URL
  std::string database = "default";
  std::string cluster;             // clickhouse: read Distributed tables over this cluster
  std::vector<std::string> shards; // clickhouse cluster: every shard's url (ingest, and reads
                                   // shard by shard), a shard's replicas joined by '|';
                                   // empty: $APX_CLICKHOUSE_URLS
  // A sampled read's time limit per shard (within the request's deadline): a later shard is
  // left out of the round and the answer says so (docs/clickhouse.md).
  int shard_timeout_ms = 2000;
  // Once the first shard has answered a round after t, the others have until late_factor * t
  // + late_slack_ms; a later one is left out of that round (0: wait for every shard). A
  // cut-over's exact statement on such a backend gets late_factor times its predicted cost.
  double late_factor = 2;
  double late_slack_ms = 5;
  // With replicas: "hedge" reads a late, down or busy shard's next replica; "all" reads every
  // replica at once (plain replication).
  std::string replica_reads = "hedge";
  // How a cut-over finishes exactly: "statement", the exact statement through the Distributed
  // tables; "sampled", one round reading every stratum not read yet through the sampled
  // layouts (at p = 1 the estimates are exact); "auto", whichever is predicted cheaper.
  std::string cut_over_reads = "auto";
  bool clickhouse() const { return type == "clickhouse"; }
};

struct PipelineSpec {
  std::string path;  // the spec file
  std::string dir;   // its folder (relative paths resolve against it)
  std::string name;
  model::Task task = model::Task::kRegression;
  std::vector<TableSpec> tables;
  std::string time_field;  // request field giving the request time
  std::vector<RequestField> request_fields;
  std::vector<FeatureSpec> features;
  ModelSpec model;
  RequestSetSpec train;
  RequestSetSpec test;
  LabelSpec label;
  GuaranteeSpec guarantee;
  BackendSpec backend;
  double scale = 1.0;  // data scale of generated tables (ApplyScale)

  // Model feature names in model input order.
  std::vector<std::string> FeatureNames() const;
  const RequestField* FindField(std::string_view name) const;
  const TableSpec* FindTable(std::string_view name) const;
};

// Parses and validates a spec file. Errors look like "pipelines/x.yaml:12: features[3].agg:
// unknown aggregation 'avgg' (expected ...)".
// `scale` is the data scale of generated tables (1 = the published scale, e.g. 0.02 for CI);
// "{scale}" in snapshot and model paths is replaced by it, so runs at different scales never
// share a snapshot or a model. InvalidArgument unless 0 < scale <= 10.
Result<PipelineSpec> LoadSpec(const std::string& path, double scale = 1.0);
// Same, from text (`path` is used in messages and to resolve relative paths).
Result<PipelineSpec> ParseSpec(const std::string& yaml_text, const std::string& path,
                               double scale = 1.0);

}  // namespace apx::pipeline

#endif  // APX_PIPELINE_SPEC_H_
