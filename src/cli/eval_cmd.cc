// `apxserve eval`.
#include <iostream>

#include "cli/cli_common.h"
#include "common/file.h"

namespace apx::cli {

Status RunEval(const EvalArgs& args, const GlobalOptions& global) {
  APX_ASSIGN_OR_RETURN(pipeline::PipelineSpec spec, LoadCliSpec(args.spec_path, global));
  APX_ASSIGN_OR_RETURN(auto p, eval::PrepareAndOpen(spec, args.threads, true));
  APX_ASSIGN_OR_RETURN(eval::EvalReport report,
                       eval::RunEval(*p, {.n = args.n,
                                          .progress = true,
                                          .delta = args.delta,
                                          .tau = args.tau,
                                          .approx_first = args.approx_first,
                                          .interleave = args.interleave}));
  const std::string js = report.ToJson().dump(2);
  if (!args.out_path.empty()) APX_RETURN_IF_ERROR(WriteFileAtomically(args.out_path, js + "\n"));
  if (!args.requests_out.empty()) {
    APX_RETURN_IF_ERROR(WriteFileAtomically(args.requests_out, report.PerRequestCsv()));
  }
  if (args.json) {
    std::cout << js << "\n";
  } else {
    std::cout << report.ToText();
  }
  return Status::Ok();
}

}  // namespace apx::cli
