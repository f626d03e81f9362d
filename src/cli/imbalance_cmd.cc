// `apxserve imbalance`.
#include <cstdio>
#include <iterator>

#include "cli/cli_common.h"
#include "common/file.h"
#include "eval/svg.h"

namespace apx::cli {

// `apxserve imbalance`: the median imbalance experiment, one row per imbalance ratio (the
// spec's requests table holds ratio k's groups on day k).
Status RunImbalance(const ImbalanceArgs& args, const GlobalOptions& global) {
  APX_ASSIGN_OR_RETURN(const pipeline::PipelineSpec spec, LoadCliSpec(args.spec_path, global));
  APX_ASSIGN_OR_RETURN(auto p, eval::PrepareAndOpen(spec, args.threads, true));
  const double ratios[] = {0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999};
  std::string md =
      "| imbalance r | meet rate | answers claiming ≥ τ | mean confidence | sample ratio | rounds |\n"
      "|---|---|---|---|---|---|\n";
  std::vector<eval::Bar> bars;
  for (size_t k = 0; k < std::size(ratios); ++k) {
    pipeline::RequestSetSpec set = spec.test;
    set.from = spec.test.from + 86400LL * static_cast<int64_t>(k);
    set.to = set.from + 86400;
    set.n = 40;
    APX_ASSIGN_OR_RETURN(const eval::EvalReport r,
                         eval::RunEval(*p, {.progress = false, .warm_up = false, .requests = set}));
    char line[256];
    std::snprintf(line, sizeof(line), "| %g | %.3f | %.3f | %.3f | %.3f | %.2f |\n", ratios[k],
                  r.meet_rate, 1.0 - r.low_confidence_rate, r.avg_confidence,
                  r.avg_sample_ratio, r.avg_rounds);
    md += line;
    char label[32], note[64];
    std::snprintf(label, sizeof(label), "r = %g", ratios[k]);
    std::snprintf(note, sizeof(note), "meet %.3f, sample %.2f", r.meet_rate, r.avg_sample_ratio);
    bars.push_back({label, r.avg_sample_ratio, note});
  }
  std::printf("%s", md.c_str());
  if (!args.markdown.empty()) {
    const std::string svg =
        eval::BarChartSvg(bars, {},
                          {.title = "Median imbalance: sample ratio read per request (meet rate)",
                           .axis_label = "fraction of the group's rows read",
                           .min_value = 0,
                           .max_value = 1.0});
    APX_RETURN_IF_ERROR(WriteFileAtomically(args.markdown, md));
    APX_RETURN_IF_ERROR(WriteFileAtomically("docs/plots/imbalance.svg", svg));
  }
  return Status::Ok();
}

}  // namespace apx::cli
