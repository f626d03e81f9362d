// `apxserve train`.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/cli_common.h"

namespace apx::cli {

Status RunTrain(const TrainArgs& args, const GlobalOptions& global) {
  APX_ASSIGN_OR_RETURN(pipeline::PipelineSpec spec, LoadCliSpec(args.spec_path, global));
  APX_RETURN_IF_ERROR(eval::PrepareData(spec, true));
  APX_ASSIGN_OR_RETURN(auto p, OpenPipeline(spec, /*load_model=*/false, !args.json));
  APX_ASSIGN_OR_RETURN(eval::TrainReport report, eval::TrainPipeline(*p, args.threads, !args.json));
  if (args.json) {
    nlohmann::json j = {{"pipeline", p->spec().name},
                        {"requests", report.requests},
                        {"feature_seconds", report.feature_seconds},
                        {"train_seconds", report.train_seconds},
                        {"train_metric", {{"name", report.metric_name}, {"value", report.metric_value}}},
                        {"model", report.model_path}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("trained %s on %d requests (features %.1f s, fit %.1f s): train %s %.4f -> %s\n",
                p->spec().name.c_str(), report.requests, report.feature_seconds, report.train_seconds,
                report.metric_name.c_str(), report.metric_value, report.model_path.c_str());
  }
  return Status::Ok();
}

}  // namespace apx::cli
