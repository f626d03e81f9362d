// eval/eval.h
//
// Training and evaluation of a pipeline on its request sets.
//   TrainPipeline: exact features of the spec's training requests → XGBoost, least squares or
//   an MLP (model.booster) → model file.
//   RunEval: the spec's test requests, answered exactly and approximately in the same run,
//   compared on latency (p50/p95, split into data/model/planner), on the labels (r2 or f1),
//   and on the guarantee (meet rate: |ŷ − y_exact| ≤ δ, or ŷ == y_exact).
//
// Thread safety: functions may run concurrently on different pipelines.
#ifndef APX_EVAL_EVAL_H_
#define APX_EVAL_EVAL_H_

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/stats.h"
#include "common/status.h"
#include "pipeline/pipeline.h"
#include "pipeline/session.h"

namespace apx::eval {

// Generates the spec's generated tables whose snapshots are missing (eval/generators.h) and
// writes their snapshots. CSV tables are left to Pipeline::Open. InvalidArgument when a
// generated table does not match the columns the spec declares.
Status PrepareData(const pipeline::PipelineSpec& spec, bool progress);

// PrepareData, then trains the spec's model when its file is missing. With both done,
// Pipeline::Open(spec) succeeds: one command works from a clean checkout.
Status Prepare(const pipeline::PipelineSpec& spec, int threads, bool progress);

// Prepare, returning the opened pipeline with its model (the tables are loaded once, whether
// or not a model had to be trained).
Result<std::unique_ptr<pipeline::Pipeline>> PrepareAndOpen(const pipeline::PipelineSpec& spec,
                                                           int threads, bool progress);

struct TrainReport {
  int requests = 0;
  double feature_seconds = 0;
  double train_seconds = 0;
  std::string metric_name;   // r2 | f1 (on the training set)
  double metric_value = 0;
  std::string model_path;
};

// Computes exact features for spec.train (using `threads` sessions), trains the spec's model
// and saves it to spec.model.path (atomically). Sets the pipeline's model.
Result<TrainReport> TrainPipeline(pipeline::Pipeline& pipeline, int threads, bool progress);

struct LatencyStats {
  double p50 = 0, p95 = 0, p99 = 0, p999 = 0, mean = 0;
};

struct EvalOptions {
  int n = -1;              // test requests (-1: spec.test.n)
  bool progress = true;
  double delta = -1;       // override δ (-1: spec)
  double tau = -1;         // override τ (-1: spec)
  double alpha = -1;       // override α (-1: spec)
  double gamma = -1;       // override γ (-1: spec)
  bool warm_up = true;     // an unmeasured exact pass first (see RunEval)
  // Request set to use instead of the spec's test set (n and the other fields as given).
  std::optional<pipeline::RequestSetSpec> requests;
  bool approx_first = false;  // measure the approximate pass before the exact one
  // Instead of two passes, answer each request both ways back to back, the exact path first
  // on even requests and second on odd ones: both see the same machine moment, and each is
  // the second (warm) one half the time. For sub-0.1 ms pipelines, where the drift between
  // two whole passes is larger than the difference being measured.
  bool interleave = false;
};

// One test request answered both ways (EvalReport::per_request, `eval --requests-out`).
struct RequestRecord {
  double exact_ms = 0, approx_ms = 0;
  double approx_data_ms = 0, approx_model_ms = 0;
  int64_t rows_matching = 0;
  int rounds = 0;
  double sample_ratio = 0;  // rows read / rows matching on the approximate path
  double confidence = 0;
  bool cut_over = false;
  bool met = false;         // |ŷ − y_exact| ≤ δ (binary: same class)
  bool claimed = false;     // confidence >= the request's τ
  int shards = 0, shards_answered = 0;  // a backend read shard by shard (Prediction)
  int strata_reread = 0;                // strata a late shard missed, read again (Prediction)
  bool exact_unavailable = false;
  std::string_view stopped = "none";     // pipeline::StopReasonName
};

struct EvalReport {
  std::string pipeline;
  std::string task;
  int requests = 0;
  double tau = 0, delta = 0;
  double mean_matching_rows = 0;     // rows an exact request reads, on average
  double max_matching_rows = 0;
  double exact_pred_std = 0;         // std of exact-feature predictions across requests
  std::string metric_name;           // r2 | f1
  // exact path
  LatencyStats exact_latency;
  double exact_metric = 0;
  double exact_mae = 0;              // regression: mean |label − prediction|
  double exact_rows_per_s = 0;       // rows read per second of data time
  // approximate path
  LatencyStats approx_latency;
  double approx_metric = 0;
  double meet_rate = 0;
  double avg_rounds = 0;
  double avg_sample_ratio = 0;       // rows read / rows matching, averaged over requests
  double avg_confidence = 0;
  double cut_over_rate = 0;          // requests answered exactly by the cut-over
  double low_confidence_rate = 0;    // answers whose reported confidence < τ (never expected
                                     // unless a serving limit or lost shards stopped them)
  // Read shard by shard: answers missing some shard's strata (degraded), and the meet rate of
  // the answers that claim τ (confidence ≥ τ): what an honest confidence must keep ≥ τ.
  double degraded_rate = 0;
  double reread_rate = 0;  // answers that read again strata a late shard had missed
  double claimed_meet_rate = 0;  // NaN (null in JSON) when no answer claimed τ
  // On ClickHouse read shard by shard: reads the approximate pass sent to servers, and how
  // many of them were hedges (a shard's second read in a round: the extra resource).
  int64_t shard_reads = 0, hedged_reads = 0;
  double approx_data_ms = 0, approx_model_ms = 0, approx_planner_ms = 0;  // means
  double exact_data_ms = 0, exact_model_ms = 0;
  std::vector<std::pair<std::string, double>> query_sample_ratio;  // per query, mean
  std::vector<std::pair<std::string, double>> query_rows;          // per query, mean matching rows
  double speedup_p50 = 0;
  double speedup_mean = 0;
  std::vector<RequestRecord> per_request;  // in request order (not in the JSON report)

  nlohmann::json ToJson() const;
  // CSV, one line per request, with a header (`eval --requests-out`).
  std::string PerRequestCsv() const;
  std::string ToText() const;
};

Result<EvalReport> RunEval(const pipeline::Pipeline& pipeline, const EvalOptions& options);

// r2 = 1 − SS_res / SS_tot.
double R2(const std::vector<double>& y_true, const std::vector<double>& y_pred);
// F1 of the positive class (1).
double F1(const std::vector<double>& y_true, const std::vector<double>& y_pred);
using apx::Percentile;  // common/stats.h

}  // namespace apx::eval

#endif  // APX_EVAL_EVAL_H_
