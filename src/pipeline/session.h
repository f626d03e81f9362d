// pipeline/session.h
//
// The per-thread executor of a compiled pipeline (pipeline/pipeline.h): a Session answers
// requests exactly or approximately (docs/algorithms.md, "Planner and stopping"):
//
//   bind every aggregation query to the request (key + time window; read its exact part) →
//   read α of every query's rest → estimate every feature → propagate through the model
//   (QMC) → stop when the confidence's lower bound ≥ τ, else let the planner grow the most
//   valuable query, or cut over to exact when finishing exactly is cheaper than going on.
//
// Thread safety: a Session belongs to one thread; many sessions may share one Pipeline.
#ifndef APX_PIPELINE_SESSION_H_
#define APX_PIPELINE_SESSION_H_

#include <chrono>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "agg/aggregate.h"
#include "backend/backend.h"
#include "common/status.h"
#include "pipeline/pipeline.h"
#include "pipeline/request.h"
#include "planner/planner.h"
#include "uq/propagation.h"

namespace apx::pipeline {

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
  kShardsOut,   // every strata the shards that answer hold was read (the others are out)
};
// "none" | "deadline" | "sample_cap" | "shards_out"
std::string_view StopReasonName(StopReason reason);

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
  // A backend that reads its shards itself (ClickHouse with shard urls): how many shards the
  // rounds asked, and how many of them delivered every stratum the request asked of them
  // (a stratum a late shard missed counts once a later round has read it again). answered <
  // shards: the answer stands on the strata that arrived (degraded), with the confidence
  // they support.
  int shards = 0;
  int shards_answered = 0;
  // Strata a late or down shard missed that a later round of the request read again.
  int strata_reread = 0;
  // The exact statement failed (a shard down): the answer is approximate from the shards
  // that answered, whatever the plan.
  bool exact_unavailable = false;
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
    int strata = 0;         // strata [0, strata) asked for
    int strata_read = 0;    // of which arrived (fewer when a shard was late or down)
    backend::StrataSet missed;  // asked but not arrived (read again while their shard answers)
    int64_t rows_read = 0;  // exact part + sampled rest
    int64_t rest_read = 0;  // sampled rest only
    int64_t shared_rows = 0;  // sampled rows also matched by the partner query (Bind)
    double cost_ns = 0;     // reading rows and finalizing estimates, this request
    int64_t cost_rows = 0;  // the rows cost_ns paid for (not the exact statement's)
    bool dirty = true;   // rows were read since the estimates were last finalized
    std::vector<agg::Aggregator*> all_aggs;  // every aggregate (ExactFromBackend)
    std::vector<double> exact_values;        // their exact values (ExactFromBackend)
  };

  // Predict's steps. ResolveOptions: δ, τ and planner options of the request (errors for bad
  // ones), *out reset. PlanRoundZero: round 0's targets in target_; true when the request
  // cuts over to exact up front (out->cut_over set). Finish: statistics the cut-over learns
  // from, per-query sample ratios and the latency split.
  Status ResolveOptions(const PredictOptions& options, Prediction* out,
                        planner::PlannerOptions* popts) const;
  // What answering exactly costs from here (ns): on a backend that computes exact aggregates,
  // its one statement over every matching row (a sample read so far does not shorten it);
  // otherwise `read_rest_ns`, reading the rows not read yet.
  double ExactCostNs(double read_rest_ns) const;
  // How to finish exactly from here, and at what predicted cost (ns), `read_rest_ns` being
  // the rows not read yet at the rounds' price. On a backend that computes exact aggregates:
  // its exact statement (ExactCostNs) or one more round reading every query's strata not read
  // yet through the sampled layouts (the rest's rows, the round's statement and a branch per
  // query; at p = 1 the estimates are exact too), as backend.cut_over_reads says: the
  // cheaper, or the one it names. Elsewhere, reading the rest (`sampled` false: the rounds
  // are the only way).
  struct ExactFinish {
    double ns = 0;
    bool sampled = false;  // through the sampled layouts, not the exact statement
  };
  ExactFinish CheapestExactFinish(double read_rest_ns) const;
  bool PlanRoundZero(const planner::PlannerOptions& popts, double ns_left, Prediction* out);
  void Finish(double total_ns, double data_ns, double model_ns, Prediction* out);

  Status Bind(const Request& request);
  // Reads every query up to its target_ strata, one batched backend call (Backend::ReadMany),
  // and reads again the strata a shard missed, where that shard is readable now.
  Status ReadRound();
  // Strata some query asked for and never got.
  backend::StrataSet Missed() const;
  // True when a round could read again strata some shard missed (it is readable now).
  bool CanReread() const;
  // Queries the next round reads (each is a branch of its statement): those whose target
  // grew, and those with missed strata to read again.
  int NextBranches() const;
  // Every feature exactly, from the backend's own exact statement (Backend::ComputesExact).
  Status ExactFromBackend();
  // Finalizes every query's estimates into features_; returns whether all are usable.
  bool Estimate(bool* all_exact);
  // With shards out and no rows left to read: the features whose sample is too small to use
  // get a wide distribution (half the rest's value range, or a count as uncertain as it is
  // large), so an answer can be given, at the point estimates, with a confidence that never
  // claims tau. False when some feature has nothing to go on (no rows and no known range).
  bool WidenUnusable();
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
  std::vector<int> planned_;  // the targets before a cut-over (a failed exact statement's fallback)
  std::vector<backend::ReadOp> read_ops_;
  backend::ReadRound round_;  // this request's deadline and the shards that answered (ReadRound)
  int shards_ = 0;  // shards this request's rounds asked (the most)
  int strata_reread_ = 0;  // strata read again that arrived (Prediction::strata_reread)
  int reread_rounds_ = 0;  // rounds that read nothing new, only strata missed before
  int branches_read_ = 0;  // queries read over this request's rounds (RecordApproximate)
  // The request finishes exactly by reading the rest of every query's strata through the
  // sampled layouts (CheapestExactFinish chose them), not by the backend's exact statement.
  bool finish_sampled_ = false;
  // The exact statement's deadline: the request's, or for a cut-over on a backend read shard
  // by shard, half of what is left, so that a hung shard leaves time to answer from the others.
  std::chrono::steady_clock::time_point exact_deadline_ = std::chrono::steady_clock::time_point::max();
  std::vector<size_t> read_query_;  // query index of each read_ops_ entry
  std::vector<backend::ExactOp> exact_ops_;
  std::unique_ptr<uq::Propagator> propagator_;
  uq::PropagationResult result_;
};

}  // namespace apx::pipeline

#endif  // APX_PIPELINE_SESSION_H_
