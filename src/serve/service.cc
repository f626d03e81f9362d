#include "serve/service.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <future>
#include <set>

namespace apx::serve {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}


}  // namespace

std::string_view LevelName(int level) {
  static constexpr std::string_view kNames[kNumLevels] = {"exact", "spec", "relaxed", "relaxed2",
                                                          "capped"};
  return level >= 0 && level < kNumLevels ? kNames[level] : "unknown";
}

Result<int> ParseLevel(std::string_view name) {
  for (int l = 0; l < kNumLevels; ++l) {
    if (LevelName(l) == name) return l;
  }
  return Status::InvalidArgument("unknown level '" + std::string(name) +
                                 "' (expected exact, spec, relaxed, relaxed2 or capped)");
}

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk: return "ok";
    case Outcome::kDegraded: return "degraded";
    case Outcome::kDropped: return "dropped";
    case Outcome::kRejected: return "rejected";
    case Outcome::kError: return "error";
  }
  return "error";
}

struct Service::PipelineState {
  std::atomic<int> level{kSpec};
  std::atomic<double> service_ms[kNumLevels];  // mean service time per level (moving average)
  std::atomic<int64_t> arrivals{0};            // since the last control step
  std::atomic<int64_t> finished{0};            //   requests finished
  std::atomic<int64_t> violations{0};          //   of which late (past the deadline) or dropped
  std::atomic<int> in_system{0};               // admitted and not yet finished
  std::atomic<double> arrival_rate{0};
  std::atomic<double> desired_replicas{1};
};

Service::Service(std::vector<std::unique_ptr<pipeline::Pipeline>> pipelines,
                 const ServiceOptions& options)
    : options_(options), pipelines_(std::move(pipelines)) {}

Result<std::unique_ptr<Service>> Service::Start(
    std::vector<std::unique_ptr<pipeline::Pipeline>> pipelines,
    std::vector<std::vector<pipeline::Request>> calibration, const ServiceOptions& options,
    const store::ProgressFn& progress) {
  if (pipelines.empty()) return Status::InvalidArgument("no pipelines to serve");
  if (calibration.size() != pipelines.size()) {
    return Status::InvalidArgument("calibration requests for " + std::to_string(calibration.size()) + " of " +
                                   std::to_string(pipelines.size()) + " pipelines");
  }
  for (size_t i = 0; i < pipelines.size(); ++i) {
    if (calibration[i].empty()) {
      return Status::InvalidArgument("pipeline '" + pipelines[i]->spec().name + "' has no calibration requests");
    }
  }
  std::set<std::string> names;
  for (const auto& p : pipelines) {
    if (!p->has_model()) return Status::FailedPrecondition("pipeline '" + p->spec().name + "' has no model");
    if (!names.insert(p->spec().name).second) {
      return Status::InvalidArgument("two pipelines are named '" + p->spec().name + "'");
    }
  }
  if (!(options.slo_ms > 0)) return Status::InvalidArgument("slo_ms must be > 0");
  if (options.fixed_level < 0 || options.fixed_level >= kNumLevels) {
    return Status::InvalidArgument("fixed_level out of range");
  }
  if (!(options.exact_share > 0 && options.exact_share <= 1)) {
    return Status::InvalidArgument("exact_share must be in (0, 1]");
  }
  if (!(options.admit_fraction > 0 && options.admit_fraction <= 1)) {
    return Status::InvalidArgument("admit_fraction must be in (0, 1]");
  }
  if (!(options.target_utilisation > 0 && options.target_utilisation <= 1)) {
    return Status::InvalidArgument("target_utilisation must be in (0, 1]");
  }
  ServiceOptions opts = options;
  if (opts.workers <= 0) opts.workers = std::max(1u, std::thread::hardware_concurrency());
  std::unique_ptr<Service> s(new Service(std::move(pipelines), opts));
  for (size_t i = 0; i < s->pipelines_.size(); ++i) {
    auto st = std::make_unique<PipelineState>();
    st->level.store(opts.load_control ? kExact : opts.fixed_level);
    for (auto& ms : st->service_ms) ms.store(1.0);
    s->state_.push_back(std::move(st));
  }
  s->sessions_.resize(static_cast<size_t>(opts.workers));
  for (auto& per_worker : s->sessions_) {
    for (const auto& p : s->pipelines_) per_worker.push_back(std::make_unique<pipeline::Session>(*p));
  }
  APX_RETURN_IF_ERROR(s->Calibrate(calibration, progress));
  s->exact_slots_ = std::max(1, static_cast<int>(opts.workers * opts.exact_share));
  s->pool_ = std::make_unique<WorkerPool>(opts.workers, opts.queue_capacity);
  if (opts.load_control) s->controller_ = std::thread([svc = s.get()] { svc->ControlLoop(); });
  return s;
}

Service::~Service() {
  {
    std::lock_guard<std::mutex> lock(control_mu_);
    stopping_ = true;
  }
  control_cv_.notify_all();
  if (controller_.joinable()) controller_.join();
  pool_.reset();  // runs what is queued, joins the workers
}

int Service::Find(std::string_view name) const {
  for (size_t i = 0; i < pipelines_.size(); ++i) {
    if (pipelines_[i]->spec().name == name) return static_cast<int>(i);
  }
  return -1;
}

apx::Status Service::Calibrate(const std::vector<std::vector<pipeline::Request>>& calibration,
                               const store::ProgressFn& progress) {
  const int64_t total = static_cast<int64_t>(pipelines_.size()) * kNumLevels;
  int64_t done = 0;
  for (size_t i = 0; i < pipelines_.size(); ++i) {
    const std::vector<pipeline::Request> requests(
        calibration[i].begin(),
        calibration[i].begin() + std::min<ptrdiff_t>(std::max(1, options_.calibration_requests),
                                                     static_cast<ptrdiff_t>(calibration[i].size())));
    pipeline::Session& session = *sessions_[0][i];
    pipeline::Prediction pred;
    for (const pipeline::Request& r : requests) {  // warm-up: touch the data once
      APX_RETURN_IF_ERROR(session.Predict(r, {.exact = true}, &pred));
    }
    for (int level = 0; level < kNumLevels; ++level) {
      const pipeline::PredictOptions opts = LevelOptions(static_cast<int>(i), level);
      const auto start = Clock::now();
      for (const pipeline::Request& r : requests) APX_RETURN_IF_ERROR(session.Predict(r, opts, &pred));
      state_[i]->service_ms[level].store(std::max(1e-3, MsSince(start) / requests.size()));
      if (progress) progress(++done, total);
    }
  }
  return apx::Status::Ok();
}

pipeline::PredictOptions Service::LevelOptions(int index, int level, double delta) const {
  const pipeline::PipelineSpec& spec = pipelines_[index]->spec();
  const bool regression = spec.task == model::Task::kRegression;
  const double base_delta = delta >= 0 ? delta : spec.guarantee.delta;
  pipeline::PredictOptions o;
  o.delta = delta;
  switch (level) {
    case kExact: o.exact = true; break;
    case kSpec: break;
    case kRelaxed:
      if (regression) o.delta = 2 * base_delta;
      else o.tau = std::max(0.5, spec.guarantee.tau - 0.05);
      break;
    case kRelaxed2:
    case kCapped:
      if (regression) o.delta = 4 * base_delta;
      else o.tau = std::max(0.5, spec.guarantee.tau - 0.15);
      if (level == kCapped) o.max_sample_ratio = 0.02;
      break;
  }
  return o;
}

Service::QueueState Service::Queue() const {
  QueueState q;
  for (const auto& st : state_) {
    q.ahead_ms += st->in_system.load(std::memory_order_relaxed) *
                  st->service_ms[st->level.load(std::memory_order_relaxed)].load(std::memory_order_relaxed);
  }
  q.busy = pool_->busy();
  return q;
}

double Service::PredictedWaitMs(const QueueState& queue, int index, int level) const {
  // The work ahead (queued requests in full, running ones at half) spread over the workers.
  const double service_ms = state_[index]->service_ms[level].load(std::memory_order_relaxed);
  return std::max(0.0, queue.ahead_ms - 0.5 * queue.busy * service_ms) / options_.workers;
}

double Service::PredictedLatencyMs(const QueueState& queue, int index, int level) const {
  return PredictedWaitMs(queue, index, level) * wait_correction_.load(std::memory_order_relaxed) +
         state_[index]->service_ms[level].load(std::memory_order_relaxed);
}

void Service::ObserveWait(double predicted_ms, double actual_ms) {
  // Only waits long enough to say something about the queue (an idle server's waits are
  // scheduling noise). Concurrent updates may lose one another: it is a moving average.
  if (std::max(predicted_ms, actual_ms) < 1.0) return;
  constexpr double kWeight = 0.02;
  const double actual = (1 - kWeight) * wait_actual_ms_.load(std::memory_order_relaxed) + kWeight * actual_ms;
  const double predicted =
      (1 - kWeight) * wait_predicted_ms_.load(std::memory_order_relaxed) + kWeight * predicted_ms;
  wait_actual_ms_.store(actual, std::memory_order_relaxed);
  wait_predicted_ms_.store(predicted, std::memory_order_relaxed);
  wait_correction_.store(predicted > 0 ? std::clamp(actual / predicted, 1.0, 20.0) : 1.0,
                         std::memory_order_relaxed);
}

ServeResult Service::Handle(int index, ServeRequest request) {
  // The result travels through a future: the worker never touches this frame, so this thread
  // may return as soon as the value is there.
  auto promise = std::make_shared<std::promise<ServeResult>>();
  std::future<ServeResult> future = promise->get_future();
  HandleAsync(index, std::move(request), [promise](ServeResult r) { promise->set_value(std::move(r)); });
  return future.get();
}

// One admitted request on its way through the queue.
struct Service::Job {
  int index = 0;
  ServeRequest request;
  ServeResult result;
  Clock::time_point arrival;
  Clock::time_point deadline;
  double deadline_ms = 0;
  double predicted_wait_ms = 0;  // at admission, uncorrected (ObserveWait)
  Done done;
};

void Service::Finish(Job& job) {
  PipelineState& st = *state_[job.index];
  ServeResult& r = job.result;
  r.total_ms = MsSince(job.arrival);
  st.finished.fetch_add(1, std::memory_order_relaxed);
  if (r.outcome == Outcome::kDropped || r.outcome == Outcome::kRejected || r.total_ms > job.deadline_ms) {
    st.violations.fetch_add(1, std::memory_order_relaxed);
  }
  if (observer_) observer_(job.index, r);
  Done done = std::move(job.done);
  done(std::move(r));
}

void Service::HandleAsync(int index, ServeRequest request, Done done) {
  auto job = std::make_shared<Job>();
  job->index = index;
  job->arrival = Clock::now();
  job->done = std::move(done);
  PipelineState& st = *state_[index];
  st.arrivals.fetch_add(1, std::memory_order_relaxed);
  job->deadline_ms = request.deadline_ms > 0 ? request.deadline_ms : options_.slo_ms;
  job->deadline = job->arrival + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double, std::milli>(job->deadline_ms));
  ServeResult& result = job->result;
  result.planned_level = request.exact ? kExact
                         : options_.load_control ? st.level.load(std::memory_order_relaxed)
                                                 : options_.fixed_level;
  result.level = result.planned_level;
  const bool exact = request.exact;
  job->request = std::move(request);
  auto refuse = [&](Outcome outcome, std::string reason) {
    result.outcome = outcome;
    result.reason = std::move(reason);
    result.status = Status::Unavailable(result.reason);
    Finish(*job);
  };
  // Exact requests (reference answers) get a share of the workers, not all of them: beyond
  // `exact_slots_` admitted at once they are rejected, so that they cannot starve the rest.
  if (exact) {
    int admitted = exact_in_system_.load(std::memory_order_relaxed);
    do {
      if (admitted >= exact_slots_) {
        return refuse(Outcome::kRejected, "exact requests at capacity (" + std::to_string(exact_slots_) +
                                              " in progress)");
      }
    } while (!exact_in_system_.compare_exchange_weak(admitted, admitted + 1, std::memory_order_relaxed));
  }
  // Most-accurate-first routing: the planned level unless the queue predicts a late answer;
  // then (load control on, not exact) the most accurate level predicted to be in time; none:
  // shed now, before any work, rather than answer late.
  // A prediction must fit in admit_fraction of the deadline: the rest absorbs its error.
  const QueueState queue = Queue();
  const double budget_ms = options_.admit_fraction * job->deadline_ms;
  if (options_.load_control && !exact) {
    while (result.level < kCapped && PredictedLatencyMs(queue, index, result.level) > budget_ms) {
      ++result.level;
    }
  }
  const double predicted = PredictedLatencyMs(queue, index, result.level);
  if (predicted > budget_ms) {
    if (exact) exact_in_system_.fetch_sub(1, std::memory_order_relaxed);
    char reason[200];
    std::snprintf(reason, sizeof(reason),
                  "overloaded: predicted latency %.1f ms at level %s exceeds %.0f %% of the deadline of %.1f ms",
                  predicted, std::string(LevelName(result.level)).c_str(), 100 * options_.admit_fraction,
                  job->deadline_ms);
    return refuse(Outcome::kDropped, reason);
  }

  job->predicted_wait_ms = PredictedWaitMs(queue, index, result.level);
  st.in_system.fetch_add(1, std::memory_order_relaxed);
  // Still queued at its deadline: refused then by the pool's reaper, not when a worker gets
  // to it (which could be a service time later).
  const bool queued = pool_->TrySubmit([this, job](int worker) { Run(*job, worker); }, job->deadline,
                                       [this, job] {
                                         job->result.queue_ms = MsSince(job->arrival);
                                         ObserveWait(job->predicted_wait_ms, job->result.queue_ms);
                                         SetDroppedWhileQueued(job->result);
                                         Leave(*job);
                                       });
  if (!queued) {
    st.in_system.fetch_sub(1, std::memory_order_relaxed);
    if (exact) exact_in_system_.fetch_sub(1, std::memory_order_relaxed);
    refuse(Outcome::kRejected, "queue full (" + std::to_string(pool_->capacity()) + " requests waiting)");
  }
}

void Service::Run(Job& job, int worker) {
  PipelineState& st = *state_[job.index];
  ServeResult& result = job.result;
  const ServeRequest& request = job.request;
  const auto start = Clock::now();
  result.queue_ms = MsSince(job.arrival);
  ObserveWait(job.predicted_wait_ms, result.queue_ms);
  if (start > job.deadline) {
    SetDroppedWhileQueued(result);
  } else {
    pipeline::PredictOptions opts = LevelOptions(job.index, result.level, request.delta);
    if (request.tau >= 0) opts.tau = request.tau;
    if (!opts.exact) opts.deadline = job.deadline;
    result.status = sessions_[worker][job.index]->Predict(request.request, opts, &result.prediction);
    if (!result.status.ok()) {
      result.outcome = Outcome::kError;
    } else {
      const double ms = MsSince(start);
      if (result.prediction.stopped == pipeline::StopReason::kNone) {
        // Moving average of this level's service time (outliers clamped to 3x).
        const double old = st.service_ms[result.level].load(std::memory_order_relaxed);
        st.service_ms[result.level].store(0.95 * old + 0.05 * std::clamp(ms, old / 3, old * 3),
                                          std::memory_order_relaxed);
      }
      if (result.prediction.stopped != pipeline::StopReason::kNone) {
        result.outcome = Outcome::kDegraded;
        const pipeline::StopReason why = result.prediction.stopped;
        result.reason = why == pipeline::StopReason::kShardsOut
                            ? "stopped before reaching tau: the shards that answer hold no more rows"
                            : "stopped by the " +
                                  std::string(why == pipeline::StopReason::kDeadline ? "deadline" : "sample cap") +
                                  " before reaching tau";
      } else if (result.level > result.planned_level) {
        result.outcome = Outcome::kDegraded;
        result.reason = "queue: served at level " + std::string(LevelName(result.level)) +
                        " instead of " + std::string(LevelName(result.planned_level)) +
                        " to meet the deadline";
      } else if (result.prediction.shards > 0 && result.prediction.shards_answered < result.prediction.shards) {
        // Counted as degraded (requests_total); ServeResultToJson gives the shards' reason.
        result.outcome = Outcome::kDegraded;
      }
    }
  }
  Leave(job);
}

void Service::SetDroppedWhileQueued(ServeResult& result) {
  result.outcome = Outcome::kDropped;
  result.reason = "deadline passed while queued";
  result.status = Status::Unavailable(result.reason);
}

void Service::Leave(Job& job) {
  state_[job.index]->in_system.fetch_sub(1, std::memory_order_relaxed);
  if (job.request.exact) exact_in_system_.fetch_sub(1, std::memory_order_relaxed);
  Finish(job);
}

PipelineStatus Service::Snapshot(int index) const {
  const PipelineState& st = *state_[index];
  PipelineStatus s;
  s.name = pipelines_[index]->spec().name;
  s.level = st.level.load();
  s.arrival_rate = st.arrival_rate.load();
  for (int l = 0; l < kNumLevels; ++l) s.service_ms[l] = st.service_ms[l].load();
  s.desired_replicas = st.desired_replicas.load();
  return s;
}

void Service::ControlStep(double interval_s) {
  const size_t n = state_.size();
  std::vector<double> demand(n);  // requests/s to serve: arrivals plus draining the backlog
  std::vector<int> level(n, kExact);
  for (size_t i = 0; i < n; ++i) {
    PipelineState& st = *state_[i];
    const double rate = static_cast<double>(st.arrivals.exchange(0)) / interval_s;
    st.arrival_rate.store(rate);
    demand[i] = rate + st.in_system.load() / interval_s;
    const double exact_load = demand[i] * st.service_ms[kExact].load() / 1000;
    st.desired_replicas.store(
        std::max(1.0, std::ceil(exact_load / (options_.workers * options_.target_utilisation))));
    // A level whose own service time exceeds the SLO can never be in time.
    while (level[i] < kCapped && st.service_ms[level[i]].load() > options_.slo_ms) ++level[i];
  }
  const double budget = options_.workers * options_.target_utilisation;  // worker-seconds per s
  auto load_of = [&](size_t i) { return demand[i] * state_[i]->service_ms[level[i]].load() / 1000; };
  while (true) {
    double load = 0;
    for (size_t i = 0; i < n; ++i) load += load_of(i);
    if (load <= budget) break;
    // Degrade the pipeline that weighs most and can still go down a level (a pipeline without
    // load gains nothing from degrading).
    int worst = -1;
    for (size_t i = 0; i < n; ++i) {
      if (level[i] < kCapped && load_of(i) > 0 &&
          (worst < 0 || load_of(i) > load_of(static_cast<size_t>(worst)))) {
        worst = static_cast<int>(i);
      }
    }
    if (worst < 0) break;  // everything at the cheapest level: routing drops what is late
    ++level[static_cast<size_t>(worst)];
  }
  // Feedback: the model above only sees worker time; HTTP threads and other processes share
  // the cores too. When more than 0.5 % of last interval's requests were late or dropped, go
  // one level below the previous one (or lower if the model says so); when there were none,
  // recover at most one level per interval; in between, hold.
  for (size_t i = 0; i < n; ++i) {
    PipelineState& st = *state_[i];
    const int64_t finished = st.finished.exchange(0);
    const int64_t violations = st.violations.exchange(0);
    const int previous = st.level.load();
    const double rate = finished > 0 ? static_cast<double>(violations) / static_cast<double>(finished) : 0;
    if (rate > 0.005) {
      level[i] = std::max(level[i], std::min(previous + 1, static_cast<int>(kCapped)));
    } else if (violations > 0) {
      level[i] = std::max(level[i], previous);
    } else {
      level[i] = std::max(level[i], previous - 1);
    }
    st.level.store(level[i]);
  }
}

void Service::ControlLoop() {
  std::unique_lock<std::mutex> lock(control_mu_);
  auto last = Clock::now();
  while (!control_cv_.wait_for(lock, options_.control_interval, [this] { return stopping_; })) {
    const auto now = Clock::now();
    const double interval_s = std::chrono::duration<double>(now - last).count();
    last = now;
    lock.unlock();
    ControlStep(std::max(interval_s, 1e-3));
    lock.lock();
  }
}

}  // namespace apx::serve
