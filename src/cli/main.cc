// The `apxserve` command: ingest, train, predict, eval, demo.
#include <CLI/CLI.hpp>

#include <cmath>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/file.h"
#include "common/progress.h"
#include "eval/eval.h"
#include "eval/svg.h"
#include "pipeline/pipeline.h"
#include "pipeline/session.h"
#include "pipeline/request.h"
#include "pipeline/spec.h"
#include "serve/api_json.h"

namespace apx::cli {
namespace {

// Exit codes: 0 success, 2 bad input (spec, request, arguments), 1 anything else.
int ExitCode(const Status& s) {
  if (s.ok()) return 0;
  return s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kNotFound ? 2 : 1;
}

int Fail(const Status& s) {
  std::fprintf(stderr, "apxserve: error: %s\n", s.message().c_str());
  return ExitCode(s);
}

store::ProgressFn LoadProgress(const std::string& label, bool enabled,
                               std::unique_ptr<ProgressBar>* bar) {
  if (!enabled) return nullptr;
  return [label, bar](int64_t done, int64_t total) {
    if (*bar == nullptr) *bar = std::make_unique<ProgressBar>(label, total);
    (*bar)->SetTotal(total);
    (*bar)->Update(done);
  };
}

double g_scale = 1.0;  // --scale of generated tables
bool g_no_cut_over = false;  // --no-cut-over: always take the approximate path

// Loads a spec with the global options applied (--scale, --no-cut-over).
Result<pipeline::PipelineSpec> LoadCliSpec(const std::string& path) {
  APX_ASSIGN_OR_RETURN(pipeline::PipelineSpec spec, pipeline::LoadSpec(path, g_scale));
  if (g_no_cut_over) spec.guarantee.cut_over = false;
  return spec;
}

Result<std::unique_ptr<pipeline::Pipeline>> OpenPipeline(const std::string& path, bool load_model,
                                                         bool progress) {
  APX_ASSIGN_OR_RETURN(pipeline::PipelineSpec spec, LoadCliSpec(path));
  std::unique_ptr<ProgressBar> bar;
  pipeline::OpenOptions options{.load_model = load_model,
                                .progress = LoadProgress("load " + spec.name, progress, &bar)};
  auto p = pipeline::Pipeline::Open(spec, options);
  if (bar) bar->Finish();
  return p;
}

int Ingest(const std::string& spec_path) {
  auto spec = LoadCliSpec(spec_path);
  if (!spec.ok()) return Fail(spec.status());
  if (Status s = eval::PrepareData(*spec, true); !s.ok()) return Fail(s);
  for (const pipeline::TableSpec& t : spec->tables) {
    if (t.generated()) {
      std::printf("table '%s' is generated: snapshot %s\n", t.schema.name.c_str(), t.snapshot.c_str());
      continue;
    }
    const auto start = std::chrono::steady_clock::now();
    std::unique_ptr<ProgressBar> bar;
    auto table = store::ReadCsv(t.csv, t.schema, LoadProgress("ingest " + t.schema.name, true, &bar));
    if (bar) bar->Finish();
    if (!table.ok()) return Fail(table.status());
    Status s = store::WriteSnapshot(**table, t.snapshot);
    if (!s.ok()) return Fail(s);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("ingested table '%s': %lld rows from %s into %s in %.1f s\n", t.schema.name.c_str(),
                static_cast<long long>((*table)->num_rows()), t.csv.c_str(), t.snapshot.c_str(), secs);
  }
  return 0;
}

int Train(const std::string& spec_path, int threads, bool json) {
  auto spec = LoadCliSpec(spec_path);
  if (!spec.ok()) return Fail(spec.status());
  if (Status s = eval::PrepareData(*spec, true); !s.ok()) return Fail(s);
  auto p = OpenPipeline(spec_path, /*load_model=*/false, !json);
  if (!p.ok()) return Fail(p.status());
  auto report = eval::TrainPipeline(**p, threads, !json);
  if (!report.ok()) return Fail(report.status());
  if (json) {
    nlohmann::json j = {{"pipeline", (*p)->spec().name},
                        {"requests", report->requests},
                        {"feature_seconds", report->feature_seconds},
                        {"train_seconds", report->train_seconds},
                        {"train_metric", {{"name", report->metric_name}, {"value", report->metric_value}}},
                        {"model", report->model_path}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("trained %s on %d requests (features %.1f s, fit %.1f s): train %s %.4f -> %s\n",
                (*p)->spec().name.c_str(), report->requests, report->feature_seconds,
                report->train_seconds, report->metric_name.c_str(), report->metric_value,
                report->model_path.c_str());
  }
  return 0;
}

Result<std::string> ReadRequestText(const std::string& arg) {
  if (arg == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  if (!arg.empty() && arg[0] == '@') {
    std::ifstream in(arg.substr(1));
    if (!in) return Status::NotFound("cannot open request file '" + arg.substr(1) + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  return arg;
}

int Predict(const std::string& spec_path, const std::string& request_arg, bool exact, double delta,
            double tau) {
  auto p = OpenPipeline(spec_path, true, false);
  if (!p.ok()) return Fail(p.status());
  auto text = ReadRequestText(request_arg);
  if (!text.ok()) return Fail(text.status());
  auto request = pipeline::ParseRequestJson((*p)->spec(), *text);
  if (!request.ok()) return Fail(request.status());
  pipeline::Session session(**p);
  pipeline::Prediction pred;
  Status s = session.Predict(*request, {.exact = exact, .delta = delta, .tau = tau}, &pred);
  if (!s.ok()) return Fail(s);
  const nlohmann::json j = serve::PredictionToJson(**p, pred);
  std::cout << j.dump(2) << "\n";
  return 0;
}

bool g_approx_first = false;  // eval --approx-first

int Eval(const std::string& spec_path, int n, bool json, double delta, double tau,
         const std::string& out_path, int threads) {
  auto spec = LoadCliSpec(spec_path);
  if (!spec.ok()) return Fail(spec.status());
  auto p = eval::PrepareAndOpen(*spec, threads, true);
  if (!p.ok()) return Fail(p.status());
  auto report = eval::RunEval(
      **p, {.n = n, .progress = true, .delta = delta, .tau = tau, .approx_first = g_approx_first});
  if (!report.ok()) return Fail(report.status());
  const std::string js = report->ToJson().dump(2);
  if (!out_path.empty()) {
    if (Status s = WriteFileAtomically(out_path, js + "\n"); !s.ok()) return Fail(s);
  }
  if (json) {
    std::cout << js << "\n";
  } else {
    std::cout << report->ToText();
  }
  return 0;
}

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
// 5.3x-16.6x range) and meet rate per pipeline (with tau).
Status WriteSuitePlots(const std::vector<eval::EvalReport>& reports, const std::string& dir) {
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
  std::snprintf(title, sizeof(title), "Median latency speedup, approximate vs exact (scale %g)", g_scale);
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

// Loads a spec at --scale, prepares it (generate data, train a missing model) and evaluates
// n test requests (-1: the spec's test.n).
Result<eval::EvalReport> EvaluateSpec(const std::string& spec_path, int n, int threads) {
  APX_ASSIGN_OR_RETURN(pipeline::PipelineSpec spec, LoadCliSpec(spec_path));
  APX_ASSIGN_OR_RETURN(auto p, eval::PrepareAndOpen(spec, threads, true));
  return eval::RunEval(*p, {.n = n, .progress = true});
}

// `apxserve plot`: the suite's charts from saved JSON reports (results/*.json).
int Plot(const std::vector<std::string>& files, const std::string& dir) {
  std::vector<eval::EvalReport> reports;
  for (const std::string& file : files) {
    std::ifstream in(file);
    if (!in) return Fail(Status::NotFound("cannot open report '" + file + "'"));
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
      return Fail(Status::InvalidArgument("report '" + file + "': " + e.what()));
    }
  }
  if (Status s = WriteSuitePlots(reports, dir); !s.ok()) return Fail(s);
  std::printf("wrote %s/speedup.svg, meet-rate.svg and latency-accuracy.svg\n", dir.c_str());
  return 0;
}

int Suite(const std::vector<std::string>& specs, int n, int threads, const std::string& results_dir,
          const std::string& markdown, bool check_meet, const std::string& plots) {
  std::vector<eval::EvalReport> reports;
  for (const std::string& spec_path : specs) {
    auto report = EvaluateSpec(spec_path, n, threads);
    if (!report.ok()) return Fail(report.status());
    char name[256];
    std::snprintf(name, sizeof(name), "%s/%s-scale%g.json", results_dir.c_str(),
                  report->pipeline.c_str(), g_scale);
    if (Status s = WriteFileAtomically(name, report->ToJson().dump(2) + "\n"); !s.ok()) return Fail(s);
    std::printf("%s", report->ToText().c_str());
    reports.push_back(*report);
  }
  const std::string table = SuiteTable(reports, g_scale);
  std::printf("\n%s", table.c_str());
  if (!markdown.empty()) {
    if (Status s = WriteSuiteSection(markdown, table); !s.ok()) return Fail(s);
    std::printf("\nwrote the table into %s\n", markdown.c_str());
  }
  if (!plots.empty()) {
    if (Status s = WriteSuitePlots(reports, plots); !s.ok()) return Fail(s);
    std::printf("wrote %s/speedup.svg and %s/meet-rate.svg\n", plots.c_str(), plots.c_str());
  }
  int broken = 0;
  for (const eval::EvalReport& r : reports) {
    if (r.meet_rate < r.tau) {
      std::fprintf(stderr, "apxserve: %s: meet rate %.3f is below tau %.2f\n", r.pipeline.c_str(),
                   r.meet_rate, r.tau);
      ++broken;
    }
  }
  return check_meet && broken > 0 ? 1 : 0;
}

// `apxserve sweep`: τ, δ (regression), α and γ one at a time around the spec's values, each
// setting measured exact vs approximate in the same run.
int Sweep(const std::string& spec_path, int n, int threads, const std::string& out_md,
          const std::string& plots) {
  auto spec = LoadCliSpec(spec_path);
  if (!spec.ok()) return Fail(spec.status());
  auto p = eval::PrepareAndOpen(*spec, threads, true);
  if (!p.ok()) return Fail(p.status());
  struct Setting {
    std::string param;
    double value;
    eval::EvalOptions options;
  };
  const pipeline::GuaranteeSpec& g = spec->guarantee;
  std::vector<Setting> settings;
  for (double tau : {0.9, 0.95, 0.99}) settings.push_back({"tau", tau, {.n = n, .progress = false, .tau = tau}});
  if (spec->task == model::Task::kRegression) {
    for (double f : {0.5, 1.0, 2.0}) {
      settings.push_back({"delta", g.delta * f, {.n = n, .progress = false, .delta = g.delta * f}});
    }
  }
  for (double a : {0.01, 0.05, 0.1}) settings.push_back({"alpha", a, {.n = n, .progress = false, .alpha = a}});
  for (double c : {0.5, 1.0, 2.0}) settings.push_back({"gamma", c, {.n = n, .progress = false, .gamma = c}});
  char scale_text[32];
  std::snprintf(scale_text, sizeof(scale_text), "%g", g_scale);
  std::string md = "Sweep of " + spec->name + " (scale " + scale_text +
                   "); one parameter at a time, the others at the spec's values.\n\n"
                   "| parameter | value | exact p50 ms | approx p50 ms | speedup p50 | meet rate | τ | rounds | sample ratio |\n"
                   "|---|---|---|---|---|---|---|---|---|\n";
  std::vector<eval::Bar> bars;
  eval::Series exact{.name = "exact", .line = false}, approx{.name = "approximate", .line = false};
  std::string approx_metric_name;
  ProgressBar bar("sweep " + spec->name, static_cast<int64_t>(settings.size()));
  for (size_t i = 0; i < settings.size(); ++i) {
    const Setting& s = settings[i];
    auto r = eval::RunEval(**p, s.options);
    if (!r.ok()) return Fail(r.status());
    char line[512];
    std::snprintf(line, sizeof(line), "| %s | %g | %.3f | %.3f | %.2fx | %.3f | %.2f | %.2f | %.3f |\n",
                  s.param.c_str(), s.value, r->exact_latency.p50, r->approx_latency.p50,
                  r->speedup_p50, r->meet_rate, r->tau, r->avg_rounds, r->avg_sample_ratio);
    md += line;
    char label[64], note[64];
    std::snprintf(label, sizeof(label), "%s = %g", s.param.c_str(), s.value);
    std::snprintf(note, sizeof(note), "%.2fx, meet %.3f", r->speedup_p50, r->meet_rate);
    bars.push_back({label, std::max(r->speedup_p50, 0.1), note});
    approx.points.push_back({r->approx_latency.p50, r->approx_metric, label});
    approx_metric_name = r->metric_name;
    if (exact.points.empty()) exact.points.push_back({r->exact_latency.p50, r->exact_metric, "exact"});
    bar.Update(static_cast<int64_t>(i + 1));
  }
  bar.Finish();
  std::printf("%s", md.c_str());
  if (!out_md.empty()) {
    if (Status s = WriteFileAtomically(out_md, md); !s.ok()) return Fail(s);
  }
  if (!plots.empty()) {
    const std::string path = plots + "/sweep-" + spec->name + ".svg";
    const std::string svg =
        eval::BarChartSvg(bars, {{1.0, "1x"}},
                          {.title = "Sweep of " + spec->name + ": speedup p50 (meet rate)",
                           .axis_label = "exact p50 / approximate p50 (log scale)",
                           .min_value = 0.5,
                           .log_scale = true});
    if (Status s = WriteFileAtomically(path, svg); !s.ok()) return Fail(s);
    const std::string tradeoff_path = plots + "/tradeoff-" + spec->name + ".svg";
    const std::string tradeoff = eval::ScatterSvg(
        {exact, approx}, {.title = "Latency vs accuracy of " + spec->name + " per setting",
                          .x_label = "p50 latency, ms (log scale)",
                          .y_label = "metric on labels (" + approx_metric_name + ")",
                          .log_x = true});
    if (Status s = WriteFileAtomically(tradeoff_path, tradeoff); !s.ok()) return Fail(s);
    std::printf("wrote %s and %s\n", path.c_str(), tradeoff_path.c_str());
  }
  return 0;
}

// `apxserve imbalance`: the median imbalance experiment, one row per imbalance ratio (the
// spec's requests table holds ratio k's groups on day k).
int Imbalance(const std::string& spec_path, int threads, const std::string& out_md) {
  auto spec = LoadCliSpec(spec_path);
  if (!spec.ok()) return Fail(spec.status());
  auto p = eval::PrepareAndOpen(*spec, threads, true);
  if (!p.ok()) return Fail(p.status());
  const double ratios[] = {0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999};
  std::string md =
      "| imbalance r | meet rate | answers claiming ≥ τ | mean confidence | sample ratio | rounds |\n"
      "|---|---|---|---|---|---|\n";
  std::vector<eval::Bar> bars;
  for (size_t k = 0; k < std::size(ratios); ++k) {
    pipeline::RequestSetSpec set = spec->test;
    set.from = spec->test.from + 86400LL * static_cast<int64_t>(k);
    set.to = set.from + 86400;
    set.n = 40;
    auto r = eval::RunEval(**p, {.progress = false, .warm_up = false, .requests = set});
    if (!r.ok()) return Fail(r.status());
    char line[256];
    std::snprintf(line, sizeof(line), "| %g | %.3f | %.3f | %.3f | %.3f | %.2f |\n", ratios[k],
                  r->meet_rate, 1.0 - r->low_confidence_rate, r->avg_confidence,
                  r->avg_sample_ratio, r->avg_rounds);
    md += line;
    char label[32], note[64];
    std::snprintf(label, sizeof(label), "r = %g", ratios[k]);
    std::snprintf(note, sizeof(note), "meet %.3f, sample %.2f", r->meet_rate, r->avg_sample_ratio);
    bars.push_back({label, r->avg_sample_ratio, note});
  }
  std::printf("%s", md.c_str());
  if (!out_md.empty()) {
    const std::string svg =
        eval::BarChartSvg(bars, {},
                          {.title = "Median imbalance: sample ratio read per request (meet rate)",
                           .axis_label = "fraction of the group's rows read",
                           .min_value = 0,
                           .max_value = 1.0});
    Status s = WriteFileAtomically(out_md, md);
    if (s.ok()) s = WriteFileAtomically("docs/plots/imbalance.svg", svg);
    if (!s.ok()) return Fail(s);
  }
  return 0;
}

int Demo(const std::vector<std::string>& specs, int n, int threads) {
  std::printf("apxserve demo: approximate features with a guaranteed bound, on the US flights data\n\n");
  std::vector<eval::EvalReport> reports;
  for (const std::string& spec_path : specs) {
    auto report = EvaluateSpec(spec_path, n, threads);
    if (!report.ok()) return Fail(report.status());
    reports.push_back(*report);
  }
  std::printf("\n");
  for (const eval::EvalReport& r : reports) std::printf("%s\n", r.ToText().c_str());
  if (!specs.empty()) {
    // One request, both ways, to show what a single answer looks like.
    auto p = OpenPipeline(specs.front(), true, false);
    if (!p.ok()) return Fail(p.status());
    pipeline::RequestSetSpec one = (*p)->spec().test;
    one.n = 1;
    std::vector<pipeline::Request> requests;
    std::vector<double> labels;
    Status s = (*p)->MakeRequests(one, &requests, &labels);
    if (!s.ok()) return Fail(s);
    pipeline::Session session(**p);
    pipeline::Prediction exact, approx;
    s = session.Predict(requests[0], {.exact = true}, &exact);
    if (s.ok()) s = session.Predict(requests[0], {}, &approx);
    if (!s.ok()) return Fail(s);
    std::printf("one %s request: %s\n", (*p)->spec().name.c_str(),
                pipeline::RequestToJson((*p)->spec(), requests[0]).c_str());
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
  return 0;
}

}  // namespace
}  // namespace apx::cli

namespace {

// CLI11's Range lets NaN through (both comparisons are false): these validators do not.
// `ok` says whether a parsed number is acceptable; `what` describes the acceptable ones.
CLI::Validator NumberWhere(bool (*ok)(double), const std::string& what) {
  return CLI::Validator(
      [ok, what](std::string& text) -> std::string {
        try {
          size_t used = 0;
          const double v = std::stod(text, &used);
          if (used == text.size() && ok(v)) return std::string();
        } catch (...) {
        }
        return "must be " + what + ", got " + text;
      },
      what);
}
CLI::Validator OpenUnitInterval() {
  return NumberWhere([](double v) { return v > 0 && v < 1; }, "in (0, 1)");
}
CLI::Validator FiniteNonNegative() {
  return NumberWhere([](double v) { return std::isfinite(v) && v >= 0; }, "a finite number >= 0");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace apx::cli;
  CLI::App app{"apxserve: serve ML inference pipelines fast, with approximate aggregation "
               "features and a guaranteed accuracy bound"};
  app.require_subcommand(1);
  app.fallthrough();  // global options (--scale) may follow the subcommand

  std::string spec_path;
  auto* ingest = app.add_subcommand("ingest", "Read a pipeline's CSV tables into binary snapshots");
  ingest->add_option("--pipeline,-p", spec_path, "pipeline spec (YAML)")->required();

  int threads = 2;
  bool json = false;
  auto* train = app.add_subcommand("train", "Train the pipeline's model on exact features");
  train->add_option("--pipeline,-p", spec_path, "pipeline spec (YAML)")->required();
  train->add_option("--threads", threads, "threads for feature computation and training")
      ->check(CLI::Range(1, 256));
  train->add_flag("--json", json, "print a JSON report");

  std::string request;
  bool exact = false;
  double delta = -1, tau = -1;
  auto* predict = app.add_subcommand("predict", "Answer one request (JSON in, JSON out)");
  predict->add_option("--pipeline,-p", spec_path, "pipeline spec (YAML)")->required();
  predict->add_option("--request,-r", request, "request JSON, @file, or - for stdin")->required();
  predict->add_flag("--exact", exact, "compute every feature exactly");
  predict->add_option("--delta", delta, "error bound (default: the spec's)")->check(FiniteNonNegative());
  predict->add_option("--tau", tau, "confidence level (default: the spec's)")->check(OpenUnitInterval());

  int n = -1;
  std::string out_path;
  auto* eval = app.add_subcommand("eval", "Exact vs approximate on the test requests, same run");
  eval->add_option("--pipeline,-p", spec_path, "pipeline spec (YAML)")->required();
  eval->add_option("--n", n, "number of test requests (default: the spec's test.n)")
      ->check(CLI::Range(1, 10'000'000));
  eval->add_flag("--json", json, "print one JSON object");
  eval->add_option("--delta", delta, "error bound (default: the spec's)")->check(FiniteNonNegative());
  eval->add_option("--tau", tau, "confidence level (default: the spec's)")->check(OpenUnitInterval());
  eval->add_option("--out", out_path, "also write the JSON report to this file");
  eval->add_option("--threads", threads, "threads for training a missing model")->check(CLI::Range(1, 256));
  eval->add_flag("--approx-first", g_approx_first,
                 "measure the approximate pass before the exact one (order check)");

  std::vector<std::string> demo_specs = {"pipelines/flight-delay.yaml", "pipelines/flight-late.yaml"};
  int demo_n = 300;
  auto* demo = app.add_subcommand("demo", "Train (if needed) and evaluate the flight pipelines");
  demo->add_option("--pipelines", demo_specs, "pipeline specs");
  demo->add_option("--n", demo_n, "test requests per pipeline")->check(CLI::Range(1, 10'000'000));
  demo->add_option("--threads", threads, "threads for training")->check(CLI::Range(1, 256));

  app.add_option("--scale", g_scale,
                 "data scale of generated tables (1 = published scale; smaller for quick runs)")
      ->check(CLI::Range(1e-6, 10.0));
  app.add_flag("--no-cut-over", g_no_cut_over,
               "never switch a request to the exact path (studies of the approximate path)");
  std::vector<std::string> suite_specs = {"pipelines/flight-delay.yaml", "pipelines/flight-late.yaml",
                                          "pipelines/bearing.yaml", "pipelines/bearing-median.yaml"};
  std::string results_dir = "results", markdown;
  bool check_meet = false;
  int suite_n = -1;
  auto* suite = app.add_subcommand("suite", "Evaluate several pipelines (exact and approximate, same run)");
  suite->add_option("--pipelines", suite_specs, "pipeline specs");
  suite->add_option("--n", suite_n, "test requests per pipeline (default: each spec's test.n)")
      ->check(CLI::Range(1, 10'000'000));
  suite->add_option("--threads", threads, "threads for training missing models")->check(CLI::Range(1, 256));
  suite->add_option("--results", results_dir, "folder for the JSON reports");
  suite->add_option("--markdown", markdown, "Markdown file whose suite section gets the table");
  suite->add_flag("--check-meet", check_meet, "exit 1 when a pipeline's meet rate is below its tau");
  std::string plots;
  suite->add_option("--plots", plots, "folder for the SVG charts (speedup.svg, meet-rate.svg)");
  std::string imbalance_md;
  auto* imbalance = app.add_subcommand("imbalance", "Median imbalance experiment (two-point data)");
  imbalance->add_option("--pipeline,-p", spec_path, "the imbalance spec")
      ->default_val("pipelines/imbalance.yaml");
  imbalance->add_option("--markdown", imbalance_md, "write the table here and docs/plots/imbalance.svg");
  std::string sweep_md, sweep_plots;
  int sweep_n = 300;
  auto* sweep = app.add_subcommand("sweep", "Vary tau, delta, alpha and gamma one at a time (same-run ratios)");
  sweep->add_option("--pipeline,-p", spec_path, "pipeline spec (YAML)")->required();
  sweep->add_option("--n", sweep_n, "test requests per setting")->check(CLI::Range(1, 10'000'000));
  sweep->add_option("--threads", threads, "threads for training a missing model")->check(CLI::Range(1, 256));
  sweep->add_option("--markdown", sweep_md, "also write the table to this Markdown file");
  sweep->add_option("--plots", sweep_plots, "folder for sweep-<pipeline>.svg");
  std::vector<std::string> plot_files;
  std::string plot_dir = "docs/plots";
  auto* plot = app.add_subcommand("plot", "Draw the suite's SVG charts from saved JSON reports");
  plot->add_option("reports", plot_files, "JSON reports (results/*.json)")->required();
  plot->add_option("--out", plot_dir, "folder for speedup.svg and meet-rate.svg");
  std::vector<std::string> serve_specs;
  ServeArgs serve_args;
  std::string control = "on", fixed_level = "spec";
  auto* serve_cmd = app.add_subcommand("serve", "Serve pipelines over HTTP/JSON (docs/api.md)");
  serve_cmd->add_option("--pipelines,-p", serve_specs, "pipeline specs")->required();
  serve_cmd->add_option("--host", serve_args.http.host, "listen address")->default_val("127.0.0.1");
  serve_cmd->add_option("--port", serve_args.http.port, "listen port (0: any free port)")
      ->default_val(8080)->check(CLI::Range(0, 65535));
  serve_cmd->add_option("--workers", serve_args.service.workers, "worker threads (0: one per core)")
      ->default_val(0)->check(CLI::Range(0, 1024));
  serve_cmd->add_option("--auth-token-file", serve_args.auth_token_file,
                        "require 'Authorization: Bearer <token>' (token: this file's first line; "
                        "or set APXSERVE_AUTH_TOKEN); /healthz and /readyz stay open");
  serve_cmd->add_option("--queue", serve_args.service.queue_capacity, "requests waiting for a worker")
      ->default_val(256)->check(CLI::Range(1, 1'000'000));
  serve_cmd->add_option("--slo-ms", serve_args.service.slo_ms, "latency objective and default deadline")
      ->default_val(50)->check(CLI::PositiveNumber);
  serve_cmd->add_option("--control", control, "load control (accuracy scaling): on or off")
      ->default_val("on")->check(CLI::IsMember({"on", "off"}));
  serve_cmd->add_option("--level", fixed_level,
                        "level with --control off: exact, spec, relaxed, relaxed2 or capped")
      ->default_val("spec");
  serve_cmd->add_option("--max-body-bytes", serve_args.http.max_body_bytes, "larger bodies get 413")
      ->default_val(1 << 20);
  serve_cmd->add_option("--max-batch", serve_args.http.max_batch, "requests per predict_batch")
      ->default_val(1000);
  serve_cmd->add_option("--max-connections", serve_args.http.max_connections,
                        "open connections at once (beyond: 503 and close)")
      ->default_val(10000)->check(CLI::Range(1, 1'000'000));
  serve_cmd->add_option("--io-threads", serve_args.http.io_threads, "event-loop threads")
      ->default_val(1)->check(CLI::Range(1, 64));
  serve_cmd->add_option("--threads", serve_args.train_threads, "threads for training a missing model")
      ->check(CLI::Range(0, 256));
  double request_timeout_s = 5, idle_timeout_s = 10;
  serve_cmd->add_option("--request-timeout-s", request_timeout_s,
                        "a request must arrive whole within this many seconds of its first byte")
      ->default_val(5)->check(CLI::Range(0.01, 3600.0));
  serve_cmd->add_option("--idle-timeout-s", idle_timeout_s, "keep-alive connections idle this long are closed")
      ->default_val(10)->check(CLI::Range(0.01, 3600.0));
  std::string loadgen_spec;
  LoadgenArgs loadgen_args;
  auto* loadgen_cmd = app.add_subcommand("loadgen", "Open-loop Poisson load against a running server");
  loadgen_cmd->add_option("--pipeline,-p", loadgen_spec, "pipeline spec (its test requests are the load)")
      ->required();
  loadgen_cmd->add_option("--host", loadgen_args.host, "server address")->default_val("127.0.0.1");
  loadgen_cmd->add_option("--port", loadgen_args.port, "server port")->default_val(8080);
  loadgen_cmd->add_option("--schedule", loadgen_args.schedule,
                          "RATE@DURATION[,...]; RATE: R or R1-R2 (ramp), req/s or x = exact-level "
                          "capacity, e.g. 0.5x@10s,0.5x-3x@30s")
      ->required();
  loadgen_cmd->add_option("--connections", loadgen_args.connections, "client connections")
      ->default_val(64)->check(CLI::Range(1, 4096));
  loadgen_cmd->add_option("--requests", loadgen_args.requests, "distinct test requests")
      ->default_val(500)->check(CLI::Range(1, 1'000'000));
  loadgen_cmd->add_option("--seed", loadgen_args.seed, "arrival process seed")->default_val(1);
  loadgen_cmd->add_option("--warmup-s", loadgen_args.warmup_s,
                          "seconds left out of the totals (steady-state figures)")
      ->default_val(0)->check(CLI::Range(0, 3600));
  loadgen_cmd->add_option("--out", loadgen_args.out_json, "write the JSON report here");
  loadgen_cmd->add_option("--svg", loadgen_args.out_svg, "write the SVG timeline here");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (*serve_cmd) {
    serve_args.service.load_control = control == "on";
    serve_args.http.request_timeout = std::chrono::milliseconds(std::llround(request_timeout_s * 1000));
    serve_args.http.idle_timeout = std::chrono::milliseconds(std::llround(idle_timeout_s * 1000));
    auto level = apx::serve::ParseLevel(fixed_level);
    if (!level.ok()) return Fail(level.status());
    serve_args.service.fixed_level = *level;
    std::vector<apx::pipeline::PipelineSpec> specs;
    for (const std::string& path : serve_specs) {
      auto spec = LoadCliSpec(path);
      if (!spec.ok()) return Fail(spec.status());
      specs.push_back(std::move(*spec));
    }
    if (apx::Status s = RunServe(specs, serve_args); !s.ok()) return Fail(s);
    return 0;
  }
  if (*loadgen_cmd) {
    auto spec = LoadCliSpec(loadgen_spec);
    if (!spec.ok()) return Fail(spec.status());
    if (apx::Status s = RunLoadgenCommand(*spec, loadgen_args); !s.ok()) return Fail(s);
    return 0;
  }
  if (*ingest) return Ingest(spec_path);
  if (*train) return Train(spec_path, threads, json);
  if (*predict) return Predict(spec_path, request, exact, delta, tau);
  if (*eval) return Eval(spec_path, n, json, delta, tau, out_path, threads);
  if (*demo) return Demo(demo_specs, demo_n, threads);
  if (*plot) return Plot(plot_files, plot_dir);
  if (*imbalance) return Imbalance(spec_path, threads, imbalance_md);
  if (*sweep) return Sweep(spec_path, sweep_n, threads, sweep_md, sweep_plots);
  if (*suite) return Suite(suite_specs, suite_n, threads, results_dir, markdown, check_meet, plots);
  return 2;
}
