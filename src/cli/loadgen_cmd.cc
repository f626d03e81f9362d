// `apxserve loadgen` (docs/serving.md).
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "eval/requests.h"
#include "cli/cli_common.h"
#include "common/file.h"
#include "eval/eval.h"
#include "eval/svg.h"
#include "pipeline/request.h"
#include "serve/loadgen.h"

namespace apx::cli {
namespace {

// The timeline: stacked charts sharing the time axis.
std::string TimelineSvg(const std::string& title, const serve::LoadgenReport& r, double slo_ms) {
  eval::Series offered{.name = "offered req/s"}, served{.name = "answered req/s"};
  eval::Series violations{.name = "SLO violations %"}, degraded{.name = "degraded %"};
  eval::Series agreement{.name = "agreement with exact %"};
  eval::Series level{.name = "mean level (0 exact .. 4 capped)"};
  eval::Series p99{.name = "p99 latency ms"};
  for (const serve::LoadgenSecond& s : r.seconds) {
    offered.points.push_back({s.t, static_cast<double>(s.offered), ""});
    served.points.push_back({s.t, static_cast<double>(s.answered), ""});
    violations.points.push_back({s.t, 100 * s.violation_rate, ""});
    degraded.points.push_back({s.t, s.offered ? 100.0 * s.degraded / s.offered : 0, ""});
    agreement.points.push_back({s.t, 100 * s.agreement, ""});
    level.points.push_back({s.t, s.mean_level, ""});
    p99.points.push_back({s.t, s.p99_ms, ""});
  }
  const std::string panels[] = {
      eval::ScatterSvg({offered, served}, {.title = title + ": load", .x_label = "time, s", .y_label = "requests/s"}),
      eval::ScatterSvg({violations, degraded}, {.title = "SLO violations (late > " + std::to_string(static_cast<int>(slo_ms)) +
                                                         " ms, dropped, rejected) and degraded answers",
                                                .x_label = "time, s", .y_label = "% of offered"}),
      eval::ScatterSvg({p99}, {.title = "p99 latency of answers", .x_label = "time, s", .y_label = "ms"}),
      eval::ScatterSvg({agreement}, {.title = "Answers within delta of (binary: equal to) the exact answer",
                                     .x_label = "time, s", .y_label = "% of answers"}),
      eval::ScatterSvg({level}, {.title = "Accuracy level of the answers", .x_label = "time, s",
                                 .y_label = "level (0 exact, 1 spec, 2-3 relaxed, 4 capped)"}),
  };
  constexpr int kPanels = static_cast<int>(std::size(panels));
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"" +
                    std::to_string(560 * kPanels) + "\">\n";
  for (int i = 0; i < kPanels; ++i) {
    std::string panel = panels[i];
    // Nest each chart at its offset (an <svg> inside an <svg> keeps its own coordinates).
    panel.replace(0, 4, "<svg y=\"" + std::to_string(560 * i) + "\"");
    svg += panel;
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace

Status RunLoadgenCommand(const LoadgenArgs& args, const GlobalOptions& global) {
  // The schedule's syntax is checked before the spec is loaded (its x-rates are only known
  // once the server has said its capacity: any positive unit checks the same syntax).
  APX_RETURN_IF_ERROR(serve::ParseSchedule(args.schedule, 1.0).status());
  APX_ASSIGN_OR_RETURN(const pipeline::PipelineSpec spec, LoadCliSpec(args.spec_path, global));
  // What the server says about the pipeline: its exact-level cost (the unit of x-rates).
  httplib::Client client(args.host, args.port);
  client.set_connection_timeout(3);
  client.set_read_timeout(60);
  auto listing = client.Get("/v1/pipelines");
  if (!listing || listing->status != 200) {
    return Status::Unavailable("no apxserve server at " + args.host + ":" + std::to_string(args.port));
  }
  const nlohmann::json server = nlohmann::json::parse(listing->body);
  const nlohmann::json* entry = nullptr;
  for (const nlohmann::json& p : server["pipelines"]) {
    if (p["name"] == spec.name) entry = &p;
  }
  if (entry == nullptr) return Status::NotFound("the server does not serve pipeline '" + spec.name + "'");
  const double exact_ms = (*entry)["service_ms"]["exact"].get<double>();
  const int workers = server["workers"].get<int>();
  const double capacity = workers * 1000.0 / exact_ms;
  const double slo_ms = server["slo_ms"].get<double>();
  APX_ASSIGN_OR_RETURN(std::vector<serve::RateSegment> schedule, serve::ParseSchedule(args.schedule, capacity));

  // The load: the pipeline's test requests (data prepared and loaded locally, no model).
  APX_RETURN_IF_ERROR(eval::PrepareData(spec, true));
  APX_ASSIGN_OR_RETURN(auto p, pipeline::Pipeline::Open(spec, {.load_model = false}));
  std::vector<pipeline::Request> requests;
  std::vector<double> labels;
  pipeline::RequestSetSpec set = spec.test;
  set.n = args.requests;
  APX_RETURN_IF_ERROR(eval::MakeRequests(*p, set, &requests, &labels));
  serve::LoadgenOptions options{.host = args.host,
                                .port = args.port,
                                .pipeline = spec.name,
                                .delta = spec.guarantee.delta,
                                .binary = spec.task == model::Task::kBinary,
                                .slo_ms = slo_ms,
                                .connections = args.connections,
                                .schedule = schedule,
                                .seed = args.seed,
                                .warmup_s = static_cast<double>(args.warmup_s)};
  for (const pipeline::Request& r : requests) options.bodies.push_back(pipeline::RequestToJson(spec, r));
  options.labels = labels;

  // Reference answers: every body once with "exact": true, before the measured run.
  options.exact.assign(options.bodies.size(), NAN);
  std::atomic<size_t> next{0};
  std::vector<std::thread> fetchers;
  for (int t = 0; t < 4; ++t) {
    fetchers.emplace_back([&] {
      httplib::Client c(args.host, args.port);
      c.set_read_timeout(60);
      for (size_t i = next++; i < options.bodies.size(); i = next++) {
        nlohmann::json body = nlohmann::json::parse(options.bodies[i]);
        body["exact"] = true;
        body["deadline_ms"] = 600000;
        // The server admits a share of its workers' worth of exact requests at once and
        // answers the rest 503: retry those (a reference answer is needed for every body).
        const std::string path = "/v1/pipelines/" + spec.name + "/predict";
        httplib::Result res = c.Post(path.c_str(), body.dump(), "application/json");
        for (int attempt = 0; attempt < 2000 && res && res->status == 503; ++attempt) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          res = c.Post(path.c_str(), body.dump(), "application/json");
        }
        if (res && res->status == 200) options.exact[i] = nlohmann::json::parse(res->body)["prediction"].get<double>();
      }
    });
  }
  for (std::thread& t : fetchers) t.join();
  int missing = 0;
  for (double e : options.exact) missing += !std::isfinite(e);
  std::fprintf(stderr,
               "loadgen %s: %zu requests, exact-level capacity %.0f req/s (%d workers x %.3f ms), "
               "SLO %g ms, %d connections%s\n",
               spec.name.c_str(), options.bodies.size(), capacity, workers, exact_ms, slo_ms,
               args.connections, missing ? " (some exact answers missing)" : "");

  APX_ASSIGN_OR_RETURN(serve::LoadgenReport report, serve::RunLoadgen(options));

  std::printf("  t  offered answered degraded dropped rejected late  viol%%   p50ms   p99ms  agree%%  level\n");
  for (const serve::LoadgenSecond& s : report.seconds) {
    std::printf("%3.0f %8d %8d %8d %7d %8d %4d %6.2f %7.2f %7.2f %7.2f %6.2f\n", s.t, s.offered, s.answered,
                s.degraded, s.dropped, s.rejected, s.late, 100 * s.violation_rate, s.p50_ms, s.p99_ms,
                100 * s.agreement, s.mean_level);
  }
  std::printf("total: offered %d, answered %d (%d degraded), dropped %d, rejected %d, errors %d, late %d; "
              "violations %.2f %%; agreement with exact %.2f %% (within the reported delta %.2f %%, "
              "mean reported tau %.3f); %s served %.3f vs exact %.3f; "
              "p50 %.2f ms, p99 %.2f ms\n",
              report.offered, report.answered, report.degraded, report.dropped, report.rejected,
              report.errors, report.late, 100 * report.violation_rate, 100 * report.agreement,
              100 * report.meet_reported, report.mean_tau_reported, options.binary ? "label accuracy %" : "label MAE", report.label_metric_served,
              report.label_metric_exact, report.p50_ms, report.p99_ms);
  if (report.dropped + report.rejected > 0) {
    std::printf("refused (503): p50 %.2f ms, p99 %.2f ms, max %.2f ms; %d without Retry-After\n",
                report.refused_p50_ms, report.refused_p99_ms, report.refused_max_ms,
                report.refused_without_retry_after);
  }
  if (!args.out_json.empty()) {
    nlohmann::json j = report.ToJson();
    j["config"] = {{"pipeline", spec.name}, {"schedule", args.schedule}, {"unit_rate", capacity},
                   {"workers", workers},    {"exact_ms", exact_ms},       {"slo_ms", slo_ms},
                   {"connections", args.connections}, {"requests", options.bodies.size()},
                   {"warmup_s", args.warmup_s},
                   {"load_control", server["load_control"]}};
    if (auto dir = std::filesystem::path(args.out_json).parent_path(); !dir.empty()) {
      std::filesystem::create_directories(dir);
    }
    APX_RETURN_IF_ERROR(WriteFileAtomically(args.out_json, j.dump(2) + "\n"));
  }
  if (!args.out_svg.empty()) {
    const std::string title = spec.name + (server["load_control"].get<bool>() ? " (load control on)"
                                                                              : " (load control off)");
    APX_RETURN_IF_ERROR(WriteFileAtomically(args.out_svg, TimelineSvg(title, report, slo_ms)));
  }
  return Status::Ok();
}

}  // namespace apx::cli
