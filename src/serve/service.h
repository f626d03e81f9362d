// serve/service.h
//
// The serving core, independent of HTTP: loaded pipelines, a worker pool with a bounded
// queue, per-request deadlines, and load control by accuracy scaling (docs/serving.md).
//
// Levels. Every pipeline has a ladder of accuracy levels, most accurate first:
//   0 exact        every feature computed exactly
//   1 spec         the pipeline's guarantee (δ, τ)
//   2 relaxed      regression: 2δ at τ; classification: τ − 0.05
//   3 relaxed2     regression: 4δ at τ; classification: τ − 0.15
//   4 capped       relaxed2, reading at most 2 % of any query's rows
// The service measures each level's mean service time when it starts (calibration on the
// spec's test requests) and keeps measuring the levels it serves.
//
// Control. Every control interval (1 s) the controller estimates each pipeline's demand
// (arrivals plus backlog) and picks the most accurate level whose predicted utilisation of
// the workers stays under the target, degrading the pipeline with the largest load first when
// several share the workers. Feedback corrects that model, which sees only worker time: if
// more than 0.5 % of the last interval's requests were late or dropped the level goes one step
// down from where it was; with none it recovers at most one step per interval. It also
// publishes desired_replicas: how many copies of this
// service the demand would need at the exact level. Routing then works per request,
// most-accurate-first: a request gets the controller's level unless the queue ahead of it
// predicts a late answer, in which case it gets the most accurate level that is predicted to
// finish in time; if none is, it is dropped at once with an explicit reason.
//
// With control off every request is served at one fixed level (default: spec).
//
// Thread safety: Handle() may be called from many threads at once.
#ifndef APX_SERVE_SERVICE_H_
#define APX_SERVE_SERVICE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"
#include "pipeline/pipeline.h"
#include "pipeline/session.h"
#include "serve/worker_pool.h"

namespace apx::serve {

inline constexpr int kNumLevels = 5;
enum Level : int { kExact = 0, kSpec = 1, kRelaxed = 2, kRelaxed2 = 3, kCapped = 4 };
std::string_view LevelName(int level);  // "exact", "spec", "relaxed", "relaxed2", "capped"
// Parses a level name. InvalidArgument naming the known ones.
Result<int> ParseLevel(std::string_view name);

struct ServiceOptions {
  int workers = 0;                 // 0: one per hardware thread
  size_t queue_capacity = 256;     // requests waiting for a worker (beyond: rejected)
  double slo_ms = 50;              // latency objective, also the default per-request deadline
  bool load_control = true;        // false: every request at `fixed_level`
  int fixed_level = kSpec;
  double target_utilisation = 0.8; // controller: keep predicted worker load under this
  double exact_share = 0.5;        // "exact": true requests admitted at once: this share of
                                   // the workers (at least 1); beyond it they are rejected
  double admit_fraction = 0.8;     // admitted only if the predicted latency fits in this
                                   // share of the deadline: the rest is headroom for the
                                   // prediction's error, so that shedding happens at
                                   // admission (fast 503) rather than at the deadline
  int calibration_requests = 40;   // per level, at start-up
  std::chrono::milliseconds control_interval{1000};
};

// One request to serve.
struct ServeRequest {
  pipeline::Request request;
  double delta = -1;        // < 0: the level's
  double tau = -1;          // < 0: the level's
  double deadline_ms = -1;  // < 0: the SLO
  bool exact = false;       // force the exact level (e.g. to get reference answers)
};

enum class Outcome {
  kOk,        // answered at the controller's level, reaching its τ
  kDegraded,  // answered, but at a less accurate level than the controller's, or stopped
              // short of τ by its deadline or the sample cap (see reason)
  kDropped,   // not answered: no level could finish before the deadline (queue, load)
  kRejected,  // not answered: the queue was full
  kError,     // bad request (InvalidArgument) or an internal error
};
std::string_view OutcomeName(Outcome outcome);

struct ServeResult {
  Outcome outcome = Outcome::kOk;
  Status status;                 // non-OK for kError (and the reason for kDropped/kRejected)
  pipeline::Prediction prediction;
  int level = kSpec;             // level applied
  int planned_level = kSpec;     // the controller's level at admission
  std::string reason;            // why degraded / dropped / rejected ("" when kOk)
  double queue_ms = 0;           // waiting for a worker
  double total_ms = 0;           // admission to answer
};

// Per-pipeline view for /v1/pipelines and metrics.
struct PipelineStatus {
  std::string name;
  int level = kSpec;
  double arrival_rate = 0;       // requests/s over the last control interval
  double service_ms[kNumLevels] = {};
  double desired_replicas = 1;
};

// Callback after every finished request (metrics).
using ResultObserver = std::function<void(int pipeline, const ServeResult&)>;

class Service {
 public:
  // Takes loaded pipelines (with models), calibrates the levels on calibration[i] (requests
  // of pipeline i, typically its test requests; the first calibration_requests of them) and
  // starts the workers and the controller. InvalidArgument for bad options, duplicate
  // pipeline names, or a pipeline without calibration requests.
  static Result<std::unique_ptr<Service>> Start(
      std::vector<std::unique_ptr<pipeline::Pipeline>> pipelines,
      std::vector<std::vector<pipeline::Request>> calibration, const ServiceOptions& options,
      const store::ProgressFn& progress = nullptr);
  ~Service();  // stops the controller, finishes queued work, joins the workers

  // Index of the pipeline named `name`, or -1.
  int Find(std::string_view name) const;
  int num_pipelines() const { return static_cast<int>(pipelines_.size()); }
  const pipeline::Pipeline& pipeline(int index) const { return *pipelines_[index]; }
  const ServiceOptions& options() const { return options_; }

  // Called exactly once with the outcome of a request: on a worker thread when the request
  // ran, on the calling thread when it was refused at admission. Must not block.
  using Done = std::function<void(ServeResult)>;

  // Serves one request of pipeline `index` without blocking: admission (dropped when the
  // queue predicts an answer after the deadline, rejected when the queue or the exact share
  // is full) and then a worker. `done` gets the result. REQUIRES: 0 <= index < num_pipelines().
  void HandleAsync(int index, ServeRequest request, Done done);
  // HandleAsync, blocking until the result is there.
  ServeResult Handle(int index, ServeRequest request);

  PipelineStatus Snapshot(int index) const;
  size_t queued() const { return pool_->queued(); }
  // Queue waits are predicted from service times, then scaled by wait_correction() >= 1, the
  // ratio of waits as they happened to waits as predicted (moving averages over waits of at
  // least 1 ms). ObserveWait feeds it one request's predicted and actual wait (ms); the
  // service calls it for every admitted request when it leaves the queue.
  double wait_correction() const { return wait_correction_.load(std::memory_order_relaxed); }
  void ObserveWait(double predicted_ms, double actual_ms);
  int busy() const { return pool_->busy(); }

  void set_observer(ResultObserver observer) { observer_ = std::move(observer); }

  // Runs one control step now (tests; the controller thread calls it every interval).
  void ControlStep(double interval_s);

 private:
  struct PipelineState;
  struct Job;

  Service(std::vector<std::unique_ptr<pipeline::Pipeline>> pipelines, const ServiceOptions& options);
  apx::Status Calibrate(const std::vector<std::vector<pipeline::Request>>& calibration,
                        const store::ProgressFn& progress);
  // Options of `level` for pipeline `index`; relaxed regression levels multiply `delta`
  // (< 0: the spec's δ).
  pipeline::PredictOptions LevelOptions(int index, int level, double delta = -1) const;
  // Work ahead of a request admitted now: every admitted request's expected service time, in
  // ms, and the number of requests running.
  struct QueueState {
    double ahead_ms = 0;
    int busy = 0;
  };
  QueueState Queue() const;
  // Predicted wait (ms) in the queue behind `queue` for a request of `index` at `level`, from
  // the service times alone (uncorrected).
  double PredictedWaitMs(const QueueState& queue, int index, int level) const;
  // Predicted latency (ms): the wait scaled by wait_correction_, plus the service time.
  double PredictedLatencyMs(const QueueState& queue, int index, int level) const;

  void ControlLoop();
  // Runs an admitted job on `worker`, then Finish.
  void Run(Job& job, int worker);
  // Records the outcome (metrics, controller counters) and calls the job's `done`.
  void Finish(Job& job);
  // An admitted job leaves the system (in_system and exact counts), then Finish.
  void Leave(Job& job);
  static void SetDroppedWhileQueued(ServeResult& result);

  ServiceOptions options_;
  std::vector<std::unique_ptr<pipeline::Pipeline>> pipelines_;
  std::vector<std::unique_ptr<PipelineState>> state_;
  // sessions_[worker][pipeline]: per-worker scratch, only touched by that worker.
  std::vector<std::vector<std::unique_ptr<pipeline::Session>>> sessions_;
  std::unique_ptr<WorkerPool> pool_;
  ResultObserver observer_;
  int exact_slots_ = 1;
  std::atomic<int> exact_in_system_{0};
  // Waits as they happened against waits as predicted (moving averages, ms): the service
  // times see only the workers' own time, not a CPU shared with the event loop and the
  // clients, so predictions can run short; admission scales them by actual / predicted (>= 1).
  std::atomic<double> wait_actual_ms_{0}, wait_predicted_ms_{0}, wait_correction_{1};

  std::mutex control_mu_;
  std::condition_variable control_cv_;
  bool stopping_ = false;  // GUARDED_BY(control_mu_)
  std::thread controller_;
};

}  // namespace apx::serve

#endif  // APX_SERVE_SERVICE_H_
