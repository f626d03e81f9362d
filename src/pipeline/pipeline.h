// pipeline/pipeline.h
//
// A compiled pipeline: the spec's tables loaded into the embedded backend with their sampled
// layouts, the model, and the QMC design built once for the pipeline's shape. A Session runs
// requests against it, exactly or approximately (DESIGN §2):
//
//   bind every aggregation query to the request (key + time window; the store knows each
//   query's matching rows exactly) → read α of every query → estimate every feature → propagate
//   through the model (QMC) → stop when confidence ≥ τ, else let the planner grow the most
//   valuable query, or cut over to exact when finishing exactly is cheaper than another round.
//
// Thread safety: a Pipeline is immutable after Open() (apart from relaxed cost statistics) and
// may be shared by threads; a Session belongs to one thread.
#ifndef APX_PIPELINE_PIPELINE_H_
#define APX_PIPELINE_PIPELINE_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "agg/aggregate.h"
#include "backend/embedded_backend.h"
#include "common/status.h"
#include "model/model.h"
#include "pipeline/request.h"
#include "pipeline/spec.h"
#include "planner/planner.h"
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
  // Range of the aggregated column over the whole table (agg::Aggregator::set_value_range).
  double value_min = 0, value_max = 0;
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

class Pipeline {
 public:
  // Loads tables (snapshot when present, else CSV, then writes the snapshot), builds the
  // sampled layouts, and loads the model unless options.load_model is false.
  static Result<std::unique_ptr<Pipeline>> Open(const PipelineSpec& spec,
                                                const OpenOptions& options = {});

  const PipelineSpec& spec() const { return spec_; }
  const backend::EmbeddedBackend& backend() const { return *backend_; }
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

  // Draws a request set (spec.train or spec.test) from its table: `n` rows with time in
  // [from, to), uniformly without replacement, seeded; each row becomes a request (request
  // fields are read from the table's columns of the same names) and its label.
  Status MakeRequests(const RequestSetSpec& set, std::vector<Request>* requests,
                      std::vector<double>* labels) const;

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
  // Records an answered request that ran `rounds` propagation rounds and read `fraction` of
  // its queries' sampled rows (a mid-request cut-over counts as reading everything).
  void RecordApproximate(int rounds, double fraction) const;
  // Called for a request about to cut over to exact before round 0: true for every
  // kProbeEvery-th such call, meaning "approximate this one anyway" (keeps the averages above
  // learning when every request cuts over).
  bool TakeProbe() const;
  static constexpr uint32_t kProbeEvery = 32;
  void RecordQueryCost(size_t q, double ns_per_row) const;

 private:
  Pipeline() = default;

  PipelineSpec spec_;
  std::unique_ptr<backend::EmbeddedBackend> backend_;
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

  Status Calibrate();
};

struct PredictOptions {
  bool exact = false;     // compute every feature exactly (the baseline path)
  double delta = -1;      // < 0: the spec's δ
  double tau = -1;        // < 0: the spec's τ
  double alpha = -1;      // < 0: the spec's α (initial sample ratio)
  double gamma = -1;      // < 0: the spec's γ (stepwise granules per query per round)
  // Serving limits (load control). A request past its deadline stops after the round in
  // progress and answers with the confidence reached (Prediction::stopped says why); the
  // sample cap bounds the fraction of each query's rows read (1 = no cap). Neither applies to
  // `exact`, and the cut-over to exact is only taken when it fits before the deadline.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  double max_sample_ratio = 1.0;
};

// Why an approximate request stopped before reaching its confidence target.
enum class StopReason {
  kNone,        // reached τ (or answered exactly)
  kDeadline,    // the deadline left no time for another round
  kSampleCap,   // every query reached the sample cap
};
std::string_view StopReasonName(StopReason reason);  // "none" | "deadline" | "sample_cap"

struct Prediction {
  double y = 0;             // regression: predicted value; binary: predicted class (0/1)
  double delta = 0;         // δ applied
  double tau = 0;           // τ applied
  double confidence = 1;    // estimated Pr(|y - y_exact| <= δ) (binary: Pr(y == y_exact))
  int rounds = 0;           // propagation rounds run (0: answered exactly without QMC)
  bool exact = false;       // every feature was computed exactly
  bool cut_over = false;    // the planner switched to exact because it was cheaper
  StopReason stopped = StopReason::kNone;  // kNone unless a serving limit cut the request short
  std::vector<double> sample_ratio;  // per aggregation query: fraction of its rows read
  std::vector<int64_t> query_rows;   // per aggregation query: rows it matches
  int64_t rows_read = 0;
  int64_t rows_matching = 0;
  double data_ms = 0;       // reading rows and aggregating
  double model_ms = 0;      // propagation (QMC + model) or the final single-row predict
  double planner_ms = 0;    // estimating, planning and bookkeeping
  double total_ms = 0;
};

// Per-thread request executor: owns all per-request scratch (aggregators, bound queries,
// the propagator's buffers), allocated once and reused.
class Session {
 public:
  // REQUIRES: pipeline outlives the session.
  explicit Session(const Pipeline& pipeline);

  // Runs one request. InvalidArgument for bad per-request δ/τ.
  Status Predict(const Request& request, const PredictOptions& options, Prediction* out);

  // Computes the exact model features of `request` into `features` (size num_features()).
  Status ExactFeatures(const Request& request, std::span<float> features);

 private:
  struct QueryRun {
    backend::BoundQuery bound;
    std::vector<agg::Aggregator> aggs;
    std::vector<agg::Aggregator*> agg_ptrs;
    std::vector<agg::Estimate> estimates;
    int strata = 0;
    int64_t rows_read = 0;  // exact part + sampled rest
    int64_t rest_read = 0;  // sampled rest only
    double cost_ns = 0;  // reading rows and finalizing estimates, this request
    bool dirty = true;   // rows were read since the estimates were last finalized
  };

  Status Bind(const Request& request);
  Status ReadTo(size_t q, int target);
  // Finalizes every query's estimates into features_; returns whether all are usable.
  bool Estimate(bool* all_exact);
  Status PredictExactFeatures(Prediction* out);
  // Plans the next round with planner::PlanJump from the last propagation; false when the
  // jump does not apply (a linear binary model), so the caller uses the stepwise planner.
  bool PlanJumpRound(double delta, double tau);

  const Pipeline& pipeline_;
  std::vector<QueryRun> runs_;
  std::vector<uq::FeatureDist> features_;
  std::vector<float> row_;
  std::vector<planner::QueryView> views_;
  std::vector<int> target_;
  std::unique_ptr<uq::Propagator> propagator_;
  uq::PropagationResult result_;
};

}  // namespace apx::pipeline

#endif  // APX_PIPELINE_PIPELINE_H_
