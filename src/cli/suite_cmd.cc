// `apxserve suite` and `apxserve plot` (the suite's charts from saved reports).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/cli_common.h"
#include "common/file.h"
#include "eval/svg.h"

namespace apx::cli {
namespace {

std::string SuiteTable(const std::vector<eval::EvalReport>& reports, double scale) {
  std::string md;
  char line[1024];
  std::snprintf(line, sizeof(line),
                "Scale %g. Latencies in ms; split = approximate path's mean data / model / planner ms.\n\n",
                scale);
  md += line;
  md += "| pipeline | requests | rows/exact req | exact p50 | exact p95 | approx p50 | approx p95 | "
        "speedup p50 | metric exact | metric approx | meet rate (τ) | rounds | sample ratio | split |\n";
  md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const eval::EvalReport& r : reports) {
    std::snprintf(line, sizeof(line),
                  "| %s | %d | %.0f | %.3f | %.3f | %.3f | %.3f | %.2fx | %s %.4f | %s %.4f | %.3f (%.2f) | "
                  "%.2f | %.3f | %.3f / %.3f / %.3f |\n",
                  r.pipeline.c_str(), r.requests, r.mean_matching_rows, r.exact_latency.p50,
                  r.exact_latency.p95, r.approx_latency.p50, r.approx_latency.p95, r.speedup_p50,
                  r.metric_name.c_str(), r.exact_metric, r.metric_name.c_str(), r.approx_metric,
                  r.meet_rate, r.tau, r.avg_rounds, r.avg_sample_ratio, r.approx_data_ms,
                  r.approx_model_ms, r.approx_planner_ms);
    md += line;
  }
  return md;
}

// Replaces the text between "<!-- suite:begin -->" and "<!-- suite:end -->" in `path` (appends
// the section when the markers are missing). Written atomically (temp file + rename).
Status WriteSuiteSection(const std::string& path, const std::string& table) {
  std::string text;
  {
    std::ifstream in(path);
    if (in) {
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
  }
  const std::string begin = "<!-- suite:begin -->", end = "<!-- suite:end -->";
  const std::string section = begin + "\n" + table + end;
  const size_t b = text.find(begin), e = text.find(end);
  if (b != std::string::npos && e != std::string::npos && e > b) {
    text.replace(b, e + end.size() - b, section);
  } else {
    text += "\n## Suite\n\n" + section + "\n";
  }
  return WriteFileAtomically(path, text);
}

// Writes the suite's charts into `dir`: speedup per pipeline (log axis, with the published
// 5.3x-16.6x range) and meet rate per pipeline (with tau). `scale` goes into a title.
Status WriteSuitePlots(const std::vector<eval::EvalReport>& reports, const std::string& dir, double scale) {
  std::filesystem::create_directories(dir);
  std::vector<eval::Bar> speed, meet;
  char note[64];
  for (const eval::EvalReport& r : reports) {
    std::snprintf(note, sizeof(note), "%.2fx", r.speedup_p50);
    speed.push_back({r.pipeline, std::max(r.speedup_p50, 0.1), note});
    std::snprintf(note, sizeof(note), "%.3f", r.meet_rate);
    meet.push_back({r.pipeline, r.meet_rate, note});
  }
  char title[128];
  std::snprintf(title, sizeof(title), "Median latency speedup, approximate vs exact (scale %g)", scale);
  const std::string speed_svg = eval::BarChartSvg(
      speed, {{1.0, "1x"}, {5.3, "5.3x"}, {16.6, "16.6x (published range)"}},
      {.title = title, .axis_label = "exact p50 / approximate p50 (log scale)", .min_value = 0.5,
       .log_scale = true});
  const std::string meet_svg = eval::BarChartSvg(
      meet, {{0.95, "tau 0.95"}},
      {.title = "Meet rate: answers within delta of (or equal to) the exact answer",
       .axis_label = "fraction of test requests", .min_value = 0.8, .max_value = 1.0});
  // Latency vs accuracy: each pipeline moves from its exact point to its approximate one.
  std::vector<eval::Series> moves;
  for (const eval::EvalReport& r : reports) {
    // Pipelines that (nearly) stay put get no point labels: they would only overprint.
    const bool moved = std::abs(r.speedup_p50 - 1) >= 0.1;
    char label[64];
    std::snprintf(label, sizeof(label), "%.2fx", r.speedup_p50);
    moves.push_back({.name = r.pipeline + " (" + r.metric_name + ")",
                     .points = {{r.exact_latency.p50, r.exact_metric, moved ? "exact" : ""},
                                {r.approx_latency.p50, r.approx_metric, moved ? label : ""}}});
  }
  const std::string tradeoff_svg = eval::ScatterSvg(
      moves, {.title = "Latency vs accuracy: exact -> approximate, per pipeline",
              .x_label = "p50 latency, ms (log scale)",
              .y_label = "metric on labels (r2 or f1)",
              .log_x = true});
  for (const auto& [name, svg] : {std::pair<std::string, std::string>{"speedup.svg", speed_svg},
                                  {"meet-rate.svg", meet_svg},
                                  {"latency-accuracy.svg", tradeoff_svg}}) {
    APX_RETURN_IF_ERROR(WriteFileAtomically(dir + "/" + name, svg));
  }
  return Status::Ok();
}

}  // namespace

Status RunPlot(const PlotArgs& args, const GlobalOptions& global) {
  std::vector<eval::EvalReport> reports;
  for (const std::string& file : args.reports) {
    std::ifstream in(file);
    if (!in) return Status::NotFound("cannot open report '" + file + "'");
    nlohmann::json j;
    try {
      in >> j;
      eval::EvalReport r;
      r.pipeline = j.at("pipeline").get<std::string>();
      r.speedup_p50 = j.at("speedup_p50").get<double>();
      r.meet_rate = j.at("approx").at("meet_rate").get<double>();
      r.metric_name = j.at("exact").at("metric").at("name").get<std::string>();
      r.exact_metric = j.at("exact").at("metric").at("value").get<double>();
      r.approx_metric = j.at("approx").at("metric").at("value").get<double>();
      r.exact_latency.p50 = j.at("exact").at("latency_ms").at("p50").get<double>();
      r.approx_latency.p50 = j.at("approx").at("latency_ms").at("p50").get<double>();
      reports.push_back(r);
    } catch (const nlohmann::json::exception& e) {
      return Status::InvalidArgument("report '" + file + "': " + e.what());
    }
  }
  APX_RETURN_IF_ERROR(WriteSuitePlots(reports, args.out_dir, global.scale));
  std::printf("wrote %s/speedup.svg, meet-rate.svg and latency-accuracy.svg\n", args.out_dir.c_str());
  return Status::Ok();
}

Result<int> RunSuite(const SuiteArgs& args, const GlobalOptions& global) {
  std::vector<eval::EvalReport> reports;
  for (const std::string& spec_path : args.spec_paths) {
    APX_ASSIGN_OR_RETURN(eval::EvalReport report, EvaluateSpec(spec_path, args.n, args.threads, global));
    char name[256];
    std::snprintf(name, sizeof(name), "%s/%s-scale%g.json", args.results_dir.c_str(),
                  report.pipeline.c_str(), global.scale);
    APX_RETURN_IF_ERROR(WriteFileAtomically(name, report.ToJson().dump(2) + "\n"));
    std::printf("%s", report.ToText().c_str());
    reports.push_back(std::move(report));
  }
  const std::string table = SuiteTable(reports, global.scale);
  std::printf("\n%s", table.c_str());
  if (!args.markdown.empty()) {
    APX_RETURN_IF_ERROR(WriteSuiteSection(args.markdown, table));
    std::printf("\nwrote the table into %s\n", args.markdown.c_str());
  }
  if (!args.plots.empty()) {
    APX_RETURN_IF_ERROR(WriteSuitePlots(reports, args.plots, global.scale));
    std::printf("wrote %s/speedup.svg and %s/meet-rate.svg\n", args.plots.c_str(), args.plots.c_str());
  }
  int broken = 0;
  for (const eval::EvalReport& r : reports) {
    if (r.meet_rate < r.tau) {
      std::fprintf(stderr, "apxserve: %s: meet rate %.3f is below tau %.2f\n", r.pipeline.c_str(),
                   r.meet_rate, r.tau);
      ++broken;
    }
  }
  return args.check_meet && broken > 0 ? 1 : 0;
}

}  // namespace apx::cli
