#include "serve/metrics.h"

#include <prometheus/text_serializer.h>

#include <numeric>

namespace apx::serve {

Metrics::Metrics(const Service& service)
    : service_(service), registry_(std::make_shared<prometheus::Registry>()) {
  auto& requests = prometheus::BuildCounter()
                       .Name("apxserve_requests_total")
                       .Help("Requests by pipeline and outcome")
                       .Register(*registry_);
  auto& latency = prometheus::BuildHistogram()
                      .Name("apxserve_request_latency_seconds")
                      .Help("Admission-to-answer latency of answered requests")
                      .Register(*registry_);
  auto& rounds = prometheus::BuildHistogram()
                     .Name("apxserve_rounds")
                     .Help("Propagation rounds per answered request (0: exact)")
                     .Register(*registry_);
  auto& ratio = prometheus::BuildHistogram()
                    .Name("apxserve_sample_ratio")
                    .Help("Fraction of the matching rows read per answered request")
                    .Register(*registry_);
  auto& confidence = prometheus::BuildHistogram()
                         .Name("apxserve_confidence")
                         .Help("Achieved confidence Pr(|y - y_exact| <= delta) per answer")
                         .Register(*registry_);
  auto& level = prometheus::BuildGauge()
                    .Name("apxserve_level")
                    .Help("Controller's accuracy level: 0 exact, 1 spec, 2 relaxed, 3 relaxed2, 4 capped")
                    .Register(*registry_);
  auto& replicas = prometheus::BuildGauge()
                       .Name("apxserve_desired_replicas")
                       .Help("Copies of this service the current demand needs at the exact level")
                       .Register(*registry_);
  auto& arrivals = prometheus::BuildGauge()
                       .Name("apxserve_arrival_rate")
                       .Help("Requests per second over the last control interval")
                       .Register(*registry_);
  auto& queue = prometheus::BuildGauge()
                    .Name("apxserve_queue_length")
                    .Help("Requests waiting for a worker")
                    .Register(*registry_);
  auto& busy = prometheus::BuildGauge()
                   .Name("apxserve_busy_workers")
                   .Help("Workers running a request")
                   .Register(*registry_);
  queue_length_ = &queue.Add({});
  busy_workers_ = &busy.Add({});
  const prometheus::Histogram::BucketBoundaries latency_buckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
  for (int i = 0; i < service.num_pipelines(); ++i) {
    const std::string name = service.pipeline(i).spec().name;
    PerPipeline p;
    for (int o = 0; o < 5; ++o) {
      p.outcome[o] = &requests.Add(
          {{"pipeline", name}, {"outcome", std::string(OutcomeName(static_cast<Outcome>(o)))}});
    }
    p.latency = &latency.Add({{"pipeline", name}}, latency_buckets);
    p.rounds = &rounds.Add({{"pipeline", name}}, prometheus::Histogram::BucketBoundaries{0, 1, 2, 3, 5, 8});
    p.sample_ratio = &ratio.Add({{"pipeline", name}},
                                prometheus::Histogram::BucketBoundaries{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.99});
    p.confidence = &confidence.Add({{"pipeline", name}},
                                   prometheus::Histogram::BucketBoundaries{0.5, 0.8, 0.9, 0.95, 0.99, 0.999});
    p.level = &level.Add({{"pipeline", name}});
    p.desired_replicas = &replicas.Add({{"pipeline", name}});
    p.arrival_rate = &arrivals.Add({{"pipeline", name}});
    pipelines_.push_back(p);
  }
}

void Metrics::Observe(int index, const ServeResult& result) {
  PerPipeline& p = pipelines_[index];
  p.outcome[static_cast<int>(result.outcome)]->Increment();
  if (result.outcome != Outcome::kOk && result.outcome != Outcome::kDegraded) return;
  const pipeline::Prediction& pred = result.prediction;
  p.latency->Observe(result.total_ms / 1000);
  p.rounds->Observe(pred.rounds);
  if (pred.rows_matching > 0) {
    p.sample_ratio->Observe(static_cast<double>(pred.rows_read) / static_cast<double>(pred.rows_matching));
  }
  p.confidence->Observe(pred.confidence);
}

std::string Metrics::Render() {
  queue_length_->Set(static_cast<double>(service_.queued()));
  busy_workers_->Set(service_.busy());
  for (int i = 0; i < service_.num_pipelines(); ++i) {
    const PipelineStatus s = service_.Snapshot(i);
    pipelines_[i].level->Set(s.level);
    pipelines_[i].desired_replicas->Set(s.desired_replicas);
    pipelines_[i].arrival_rate->Set(s.arrival_rate);
  }
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace apx::serve
