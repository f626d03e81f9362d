// `apxserve sweep`.
#include <algorithm>
#include <cstdio>

#include "cli/cli_common.h"
#include "common/file.h"
#include "eval/svg.h"

namespace apx::cli {

// `apxserve sweep`: τ, δ (regression), α and γ one at a time around the spec's values, each
// setting measured exact vs approximate in the same run.
Status RunSweep(const SweepArgs& args, const GlobalOptions& global) {
  APX_ASSIGN_OR_RETURN(const pipeline::PipelineSpec spec, LoadCliSpec(args.spec_path, global));
  APX_ASSIGN_OR_RETURN(auto p, eval::PrepareAndOpen(spec, args.threads, true));
  const int n = args.n;
  struct Setting {
    std::string param;
    double value;
    eval::EvalOptions options;
  };
  const pipeline::GuaranteeSpec& g = spec.guarantee;
  std::vector<Setting> settings;
  for (double tau : {0.9, 0.95, 0.99}) settings.push_back({"tau", tau, {.n = n, .progress = false, .tau = tau}});
  if (spec.task == model::Task::kRegression) {
    for (double f : {0.5, 1.0, 2.0}) {
      settings.push_back({"delta", g.delta * f, {.n = n, .progress = false, .delta = g.delta * f}});
    }
  }
  for (double a : {0.01, 0.05, 0.1}) settings.push_back({"alpha", a, {.n = n, .progress = false, .alpha = a}});
  for (double c : {0.5, 1.0, 2.0}) settings.push_back({"gamma", c, {.n = n, .progress = false, .gamma = c}});
  char scale_text[32];
  std::snprintf(scale_text, sizeof(scale_text), "%g", global.scale);
  std::string md = "Sweep of " + spec.name + " (scale " + scale_text +
                   "); one parameter at a time, the others at the spec's values.\n\n"
                   "| parameter | value | exact p50 ms | approx p50 ms | speedup p50 | meet rate | τ | rounds | sample ratio |\n"
                   "|---|---|---|---|---|---|---|---|---|\n";
  std::vector<eval::Bar> bars;
  eval::Series exact{.name = "exact", .line = false}, approx{.name = "approximate", .line = false};
  std::string approx_metric_name;
  ProgressBar bar("sweep " + spec.name, static_cast<int64_t>(settings.size()));
  for (size_t i = 0; i < settings.size(); ++i) {
    const Setting& s = settings[i];
    APX_ASSIGN_OR_RETURN(const eval::EvalReport r, eval::RunEval(*p, s.options));
    char line[512];
    std::snprintf(line, sizeof(line), "| %s | %g | %.3f | %.3f | %.2fx | %.3f | %.2f | %.2f | %.3f |\n",
                  s.param.c_str(), s.value, r.exact_latency.p50, r.approx_latency.p50,
                  r.speedup_p50, r.meet_rate, r.tau, r.avg_rounds, r.avg_sample_ratio);
    md += line;
    char label[64], note[64];
    std::snprintf(label, sizeof(label), "%s = %g", s.param.c_str(), s.value);
    std::snprintf(note, sizeof(note), "%.2fx, meet %.3f", r.speedup_p50, r.meet_rate);
    bars.push_back({label, std::max(r.speedup_p50, 0.1), note});
    approx.points.push_back({r.approx_latency.p50, r.approx_metric, label});
    approx_metric_name = r.metric_name;
    if (exact.points.empty()) exact.points.push_back({r.exact_latency.p50, r.exact_metric, "exact"});
    bar.Update(static_cast<int64_t>(i + 1));
  }
  bar.Finish();
  std::printf("%s", md.c_str());
  if (!args.markdown.empty()) APX_RETURN_IF_ERROR(WriteFileAtomically(args.markdown, md));
  if (!args.plots.empty()) {
    const std::string path = args.plots + "/sweep-" + spec.name + ".svg";
    const std::string svg =
        eval::BarChartSvg(bars, {{1.0, "1x"}},
                          {.title = "Sweep of " + spec.name + ": speedup p50 (meet rate)",
                           .axis_label = "exact p50 / approximate p50 (log scale)",
                           .min_value = 0.5,
                           .log_scale = true});
    APX_RETURN_IF_ERROR(WriteFileAtomically(path, svg));
    const std::string tradeoff_path = args.plots + "/tradeoff-" + spec.name + ".svg";
    const std::string tradeoff = eval::ScatterSvg(
        {exact, approx}, {.title = "Latency vs accuracy of " + spec.name + " per setting",
                          .x_label = "p50 latency, ms (log scale)",
                          .y_label = "metric on labels (" + approx_metric_name + ")",
                          .log_x = true});
    APX_RETURN_IF_ERROR(WriteFileAtomically(tradeoff_path, tradeoff));
    std::printf("wrote %s and %s\n", path.c_str(), tradeoff_path.c_str());
  }
  return Status::Ok();
}

}  // namespace apx::cli
