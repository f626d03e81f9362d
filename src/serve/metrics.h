// serve/metrics.h
//
// Prometheus metrics of a running service (prometheus-cpp core; rendered as text by the HTTP
// layer at GET /metrics). Names, all prefixed apxserve_:
//   requests_total{pipeline, outcome}        counter; outcome: ok|degraded|dropped|rejected|error
//   request_latency_seconds{pipeline}        histogram of admission-to-answer time (answered)
//   rounds{pipeline}, sample_ratio{pipeline}, confidence{pipeline}   histograms (answered)
//   queue_length, busy_workers               gauges
//   level{pipeline}                          gauge: the controller's level (0 exact .. 4 capped)
//   desired_replicas{pipeline}               gauge: copies needed to serve the demand exactly
//   arrival_rate{pipeline}                   gauge: requests/s over the last control interval
//
// Thread safety: Observe and Render may be called concurrently.
#ifndef APX_SERVE_METRICS_H_
#define APX_SERVE_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "serve/service.h"

namespace apx::serve {

class Metrics {
 public:
  explicit Metrics(const Service& service);

  // Records one finished request of pipeline `index`.
  void Observe(int index, const ServeResult& result);

  // Refreshes the gauges from the service and returns the Prometheus text exposition.
  std::string Render();

 private:
  struct PerPipeline {
    std::array<prometheus::Counter*, 5> outcome{};  // by Outcome
    prometheus::Histogram* latency = nullptr;
    prometheus::Histogram* rounds = nullptr;
    prometheus::Histogram* sample_ratio = nullptr;
    prometheus::Histogram* confidence = nullptr;
    prometheus::Gauge* level = nullptr;
    prometheus::Gauge* desired_replicas = nullptr;
    prometheus::Gauge* arrival_rate = nullptr;
  };

  const Service& service_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<PerPipeline> pipelines_;
  prometheus::Gauge* queue_length_ = nullptr;
  prometheus::Gauge* busy_workers_ = nullptr;
};

}  // namespace apx::serve

#endif  // APX_SERVE_METRICS_H_
