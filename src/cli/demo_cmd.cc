// `apxserve demo`.
#include <cstdio>

#include "eval/requests.h"
#include "cli/cli_common.h"
#include "pipeline/request.h"
#include "pipeline/session.h"

namespace apx::cli {

Status RunDemo(const DemoArgs& args, const GlobalOptions& global) {
  std::printf("apxserve demo: approximate features with a guaranteed bound, on the US flights data\n\n");
  std::vector<eval::EvalReport> reports;
  for (const std::string& spec_path : args.spec_paths) {
    APX_ASSIGN_OR_RETURN(eval::EvalReport report, EvaluateSpec(spec_path, args.n, args.threads, global));
    reports.push_back(std::move(report));
  }
  std::printf("\n");
  for (const eval::EvalReport& r : reports) std::printf("%s\n", r.ToText().c_str());
  if (!args.spec_paths.empty()) {
    // One request, both ways, to show what a single answer looks like.
    APX_ASSIGN_OR_RETURN(pipeline::PipelineSpec spec, LoadCliSpec(args.spec_paths.front(), global));
    APX_ASSIGN_OR_RETURN(auto p, OpenPipeline(spec, true, false));
    pipeline::RequestSetSpec one = p->spec().test;
    one.n = 1;
    std::vector<pipeline::Request> requests;
    std::vector<double> labels;
    APX_RETURN_IF_ERROR(eval::MakeRequests(*p, one, &requests, &labels));
    pipeline::Session session(*p);
    pipeline::Prediction exact, approx;
    APX_RETURN_IF_ERROR(session.Predict(requests[0], {.exact = true}, &exact));
    APX_RETURN_IF_ERROR(session.Predict(requests[0], {}, &approx));
    std::printf("one %s request: %s\n", p->spec().name.c_str(),
                pipeline::RequestToJson(p->spec(), requests[0]).c_str());
    std::printf("  exact : %8.3f after reading %lld rows in %.3f ms\n", exact.y,
                static_cast<long long>(exact.rows_read), exact.total_ms);
    std::printf("  approx: %8.3f after reading %lld rows in %.3f ms, %d round(s), confidence %.3f "
                "that it is within %.3g of the exact answer\n  (true label %.0f)\n\n",
                approx.y, static_cast<long long>(approx.rows_read), approx.total_ms, approx.rounds,
                approx.confidence, approx.delta, labels[0]);
  }
  std::printf("%-14s %10s %10s %8s %10s %10s %9s\n", "pipeline", "exact p50", "approx p50",
              "speedup", "exact", "approx", "meet");
  for (const eval::EvalReport& r : reports) {
    std::printf("%-14s %8.3fms %8.3fms %7.2fx %4s %.3f %4s %.3f %9.3f\n", r.pipeline.c_str(),
                r.exact_latency.p50, r.approx_latency.p50, r.speedup_p50, r.metric_name.c_str(),
                r.exact_metric, r.metric_name.c_str(), r.approx_metric, r.meet_rate);
  }
  std::printf("\nmeet = fraction of answers within delta of (regression) or equal to (classification)\n"
              "the answer on exact features; the guarantee asks for >= tau.\n");
  return Status::Ok();
}

}  // namespace apx::cli
