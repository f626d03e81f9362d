// pipeline/pipeline.h
//
// A compiled pipeline: the spec's tables loaded into the embedded backend with their sampled
// layouts, the model, the QMC design built once for the pipeline's shape, and the cost
// statistics the cut-over learns. A Session (pipeline/session.h) runs requests against it.
//
// Thread safety: a Pipeline is immutable after Open() (apart from relaxed cost statistics) and
// may be shared by threads; a Session (pipeline/session.h) belongs to one thread.
#ifndef APX_PIPELINE_PIPELINE_H_
#define APX_PIPELINE_PIPELINE_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agg/aggregate.h"
#include "backend/clickhouse_backend.h"
#include "backend/embedded_backend.h"
#include "common/status.h"
#include "model/model.h"
#include "pipeline/request.h"
#include "pipeline/spec.h"
#include "planner/planner.h"
#include "planner/round_cost.h"
#include "uq/propagation.h"

namespace apx::pipeline {

struct OpenOptions {
  bool load_model = true;          // false for training (the model does not exist yet)
  store::ProgressFn progress;      // table load / layout build progress (may be empty)
  std::string progress_label;      // unused by the library; for callers' progress bars
};

// One aggregation query of the compiled pipeline.
struct CompiledQuery {
  int spec_index = 0;              // index into spec.features
  int shape = -1;                  // backend query shape
  std::vector<int> key_fields;     // request field index per key column
  std::vector<int> feature_slots;  // model feature index per aggregate
  int64_t window_from = 0, window_to = 0;
  bool has_window = false;
  // An earlier query that reads the same sampled rows (same layout and column: nested or
  // overlapping windows of one key), or -1; per aggregate, the index of that query's aggregate
  // of the same operator, or -1. Their errors are correlated (Session::Estimate).
  int partner_query = -1;
  std::vector<int> partner_agg;
};

// A model feature read from the request (exact), resolved once at compile time.
struct CompiledRequestFeature {
  int slot = 0;         // model feature index
  int field = 0;        // request field index
  Transform transform = Transform::kNone;
};

// A client for the spec's ClickHouse server (url from the spec or $APX_CLICKHOUSE_URL,
// credentials from the environment); Unavailable when it does not answer.
Result<std::shared_ptr<const backend::ClickHouseClient>> ConnectClickHouse(const BackendSpec& spec);
// Clients for every shard of the spec's cluster (`shards:` or $APX_CLICKHOUSE_URLS, comma
// separated), for ingest (check: each must answer) and for reads shard by shard (!check: a
// shard down when the pipeline opens is left out of rounds instead).
// A shard's replicas are joined by '|' in either (the first is its primary, whose client this
// returns).
Result<std::vector<std::shared_ptr<const backend::ClickHouseClient>>> ConnectShards(const BackendSpec& spec,
                                                                                   bool check = true);
// Per shard, clients for its other replicas (empty lists without replicas).
Result<std::vector<std::vector<std::shared_ptr<const backend::ClickHouseClient>>>> ConnectReplicas(
    const BackendSpec& spec, bool check = true);

// One table IngestClickHouse loaded.
struct IngestedTable {
  std::string name;
  int64_t rows = 0;
  size_t layouts = 0;  // key sets (a sampled layout and a sorted copy each)
  size_t shards = 0;   // servers it went to with a cluster (0: one server)
  double seconds = 0;
};

// Loads every table of `spec` (backend clickhouse) into ClickHouse: a sampled layout and a
// sorted copy per key set its features use (docs/clickhouse.md), on every shard with a
// cluster. The rows come from the embedded store's loading (CSV or snapshot). Refuses tables
// that exist already. `progress(table)` (optional) gives a table's progress function;
// `done` (optional) is called after each table.
Status IngestClickHouse(const PipelineSpec& spec,
                        const std::function<store::ProgressFn(const std::string&)>& progress = nullptr,
                        const std::function<void(const IngestedTable&)>& done = nullptr);

class Pipeline {
 public:
  // Loads tables (snapshot when present, else CSV, then writes the snapshot), builds the
  // sampled layouts, and loads the model unless options.load_model is false.
  static Result<std::unique_ptr<Pipeline>> Open(const PipelineSpec& spec,
                                                const OpenOptions& options = {});

  const PipelineSpec& spec() const { return spec_; }
  // The backend feature queries go to (the spec's `backend`).
  const backend::Backend& backend() const {
    return remote_ != nullptr ? static_cast<const backend::Backend&>(*remote_) : *backend_;
  }
  // The embedded store holding the spec's tables (request sets and labels are drawn from it,
  // whatever backend serves the features).
  const backend::EmbeddedBackend& store() const { return *backend_; }
  const std::vector<CompiledQuery>& queries() const { return queries_; }
  const std::vector<CompiledRequestFeature>& request_features() const { return request_features_; }
  // Request field index of the request time, or -1 when the spec has none.
  int time_field() const { return time_field_; }
  size_t num_features() const { return feature_names_.size(); }
  const std::vector<std::string>& feature_names() const { return feature_names_; }
  const uq::SaltelliDesign& design() const { return *design_; }
  // REQUIRES: a model is loaded.
  const model::Model& model() const { return *model_; }
  bool has_model() const { return model_ != nullptr; }
  // Installs a (newly trained) model and calibrates the round overhead with it.
  // InvalidArgument when its feature count differs from the spec's.
  // REQUIRES: no Session of this pipeline exists yet.
  Status SetModel(std::unique_ptr<model::Model> model);

  // Cost statistics shared by sessions (relaxed atomics; they only steer the cut-over):
  // one propagation round, and reading + aggregating one row of each query. Both start from a
  // calibration at Open() and follow an outlier-clamped moving average of what requests measure.
  double round_overhead_ns() const { return round_overhead_ns_.load(std::memory_order_relaxed); }
  void RecordRoundOverhead(double ns) const;
  double query_ns_per_row(size_t q) const { return query_ns_per_row_[q].load(std::memory_order_relaxed); }
  // Propagation rounds an approximate request has needed, on average (starts at 2), and the
  // fraction of its queries' sampled rows it read (starts at 2α).
  double average_rounds() const { return average_rounds_.load(std::memory_order_relaxed); }
  double average_fraction() const { return average_fraction_.load(std::memory_order_relaxed); }
  // Records an answered request that ran `rounds` propagation rounds, read `fraction` of its
  // queries' sampled rows (a mid-request cut-over counts as reading everything) and read
  // `branches` queries over its rounds.
  void RecordApproximate(int rounds, double fraction, int branches) const;
  // Called for a request about to cut over to exact before round 0: true for every
  // kProbeEvery-th such call, meaning "approximate this one anyway" (keeps the averages above
  // learning when every request cuts over).
  bool TakeProbe() const;
  static constexpr uint32_t kProbeEvery = 32;
  // Cost of reading and aggregating one row before a request has measured its own (ns); about
  // what a moments aggregate over contiguous doubles costs on one core.
  static constexpr double kDefaultNsPerRow = 2.0;
  void RecordQueryCost(size_t q, double ns_per_row) const;
  // On a backend that computes exact aggregates (Backend::ComputesExact), the exact path is
  // one statement per request: its time per matching row (starting from the embedded store's
  // default) prices the cut-over, apart from the sampled reads' cost (query_ns_per_row).
  double exact_statement_ns_per_row() const { return exact_ns_per_row_.load(std::memory_order_relaxed); }
  // Exact statements recorded so far (RecordExactStatement with enough rows).
  int64_t exact_statements() const { return exact_statements_.load(std::memory_order_relaxed); }
  // Records one exact statement that took `ns` for `rows` matching rows (ignored under 1,000).
  void RecordExactStatement(double ns, int64_t rows) const;
  // A remote backend's round is one statement per shard whose time is a fixed part (the round
  // trip, parsing), a part per query it reads (a UNION ALL branch: ~1 ms on ClickHouse 18.16)
  // and a part per row (planner/round_cost.h). Fitted over recent rounds (exponentially
  // weighted); before two rounds: the default cost per row and nothing else.
  using RoundCost = planner::RoundCost;
  RoundCost remote_round_cost() const;
  void RecordRemoteRound(int branches, int64_t rows, double ns) const;
  // Queries an approximate request's rounds have read in all, on average (a remote round
  // pays RoundCost::ns_per_branch for each; starts at two rounds of every query).
  double average_branches() const { return average_branches_.load(std::memory_order_relaxed); }

 private:
  Pipeline() = default;

  PipelineSpec spec_;
  std::unique_ptr<backend::EmbeddedBackend> backend_;
  std::unique_ptr<backend::Backend> remote_;  // clickhouse, or null
  std::vector<CompiledQuery> queries_;
  std::vector<CompiledRequestFeature> request_features_;
  int time_field_ = -1;
  std::vector<std::string> feature_names_;
  std::unique_ptr<uq::SaltelliDesign> design_;
  std::unique_ptr<model::Model> model_;
  mutable std::atomic<double> round_overhead_ns_{200'000.0};
  mutable std::atomic<double> average_rounds_{2.0};
  mutable std::atomic<double> average_fraction_{0.1};
  mutable std::atomic<uint32_t> upfront_cuts_{0};
  std::unique_ptr<std::atomic<double>[]> query_ns_per_row_;
  mutable std::atomic<double> exact_ns_per_row_{kDefaultNsPerRow};
  mutable std::atomic<int64_t> exact_statements_{0};
  mutable std::mutex exact_mu_;  // RecordExactStatement's updates (readers use the atomics)
  mutable std::atomic<double> average_branches_{2.0};
  mutable std::mutex round_fit_mu_;
  mutable planner::RoundCostFit round_fit_{0.98, kDefaultNsPerRow};

  Status Calibrate();
};

}  // namespace apx::pipeline

#endif  // APX_PIPELINE_PIPELINE_H_
