// serve/loadgen.h
//
// An open-loop load generator for a running `apxserve serve` (docs/serving.md): requests
// arrive as a Poisson process whose rate follows a schedule, independently of how fast the
// server answers. Latency is measured from each request's scheduled arrival, so a client-side
// backlog (all connections busy) counts against the server, as it would for real users
// (no coordinated omission).
//
// Thread safety: Run() is called from one thread; it starts its own connection threads.
#ifndef APX_SERVE_LOADGEN_H_
#define APX_SERVE_LOADGEN_H_

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace apx::serve {

// One piece of the rate schedule: the rate goes linearly from `from` to `to` (requests/s)
// over `seconds`. A rate written with an `x` suffix is a multiple of a unit rate.
struct RateSegment {
  double from = 0, to = 0;
  double seconds = 0;
};

// Parses "RATE@DURATION[,...]" where RATE is `R` (constant) or `R1-R2` (linear ramp), each R
// a number of requests/s or a multiple of `unit_rate` with an `x` suffix (e.g. "0.5x"), and
// DURATION a number with an `s` suffix, e.g. "200@10s,200-800@30s,0.5x-3x@60s".
// InvalidArgument naming the bad piece; x-rates need unit_rate > 0.
Result<std::vector<RateSegment>> ParseSchedule(std::string_view text, double unit_rate);

// Arrival times (seconds from the start) of a Poisson process with the schedule's rate,
// seeded. Inverse-time method: unit-rate exponential gaps mapped through the integrated rate.
std::vector<double> PoissonArrivals(const std::vector<RateSegment>& schedule, uint64_t seed);

struct LoadgenOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string pipeline;            // name on the server
  std::vector<std::string> bodies; // request bodies (JSON objects), sent round-robin
  std::vector<double> exact;       // exact prediction per body (NaN: unknown)
  std::vector<double> labels;      // true label per body (optional; binary: 0/1)
  double delta = 0;                // the pipeline's δ: a served answer "meets" when within δ
  bool binary = false;             //   (binary: equal class) of the exact one
  double slo_ms = 50;              // late answers count as violations
  int connections = 64;
  std::vector<RateSegment> schedule;
  uint64_t seed = 1;
  bool progress = true;
  double warmup_s = 0;             // seconds excluded from the report's totals (not per second)
};

// Per second of the run.
struct LoadgenSecond {
  double t = 0;                     // start of the second
  int offered = 0;                  // arrivals scheduled in it
  int answered = 0;                 // 200 answers (ok or degraded)
  int degraded = 0, dropped = 0, rejected = 0, errors = 0, late = 0;
  double p50_ms = 0, p95_ms = 0, p99_ms = 0;  // latency of answered requests
  double violation_rate = 0;        // (late + dropped + rejected + errors) / offered
  double agreement = 1;             // answered with a known exact answer: share that meets
  double mean_level = 0;            // mean level index of the answers (0 exact .. 4 capped)
};

struct LoadgenReport {
  std::vector<LoadgenSecond> seconds;
  // Totals over the seconds after the warm-up (LoadgenOptions::warmup_s).
  int offered = 0, answered = 0, degraded = 0, dropped = 0, rejected = 0, errors = 0, late = 0;
  double violation_rate = 0;
  double agreement = 1;             // over all answers with a known exact answer
  // Share of those answers within the δ they report (binary: same class), and the mean τ they
  // report: the guarantee holds when meet_reported >= mean_tau_reported.
  double meet_reported = 1, mean_tau_reported = 0;
  // Against the labels, over answers with a known exact answer and label: binary, the share
  // of correct classes (percent) of the served answers and of the exact answers on the same
  // requests; regression, the mean absolute error of each.
  double label_metric_served = 0, label_metric_exact = 0;
  double p50_ms = 0, p99_ms = 0;   // latency of answered requests
  // Latency of the 503 answers (from scheduled arrival), and how many lacked Retry-After.
  double refused_p50_ms = 0, refused_p99_ms = 0, refused_max_ms = 0;
  int refused_without_retry_after = 0;
  double duration_s = 0;
  nlohmann::json ToJson() const;
};

// Sends the schedule's arrivals and collects the answers. Unavailable if the server cannot be
// reached at all.
Result<LoadgenReport> RunLoadgen(const LoadgenOptions& options);

}  // namespace apx::serve

#endif  // APX_SERVE_LOADGEN_H_
