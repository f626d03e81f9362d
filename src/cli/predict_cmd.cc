// `apxserve predict`.
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/cli_common.h"
#include "pipeline/request.h"
#include "pipeline/session.h"
#include "serve/api_json.h"

namespace apx::cli {
namespace {

// The text of --request: the argument itself, the file after '@', or stdin for "-".
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

}  // namespace

Status RunPredict(const PredictArgs& args, const GlobalOptions& global) {
  // The request is read and checked against the spec before any data or model is loaded.
  APX_ASSIGN_OR_RETURN(const std::string text, ReadRequestText(args.request));
  APX_ASSIGN_OR_RETURN(pipeline::PipelineSpec spec, LoadCliSpec(args.spec_path, global));
  APX_ASSIGN_OR_RETURN(const pipeline::Request request, pipeline::ParseRequestJson(spec, text));
  APX_ASSIGN_OR_RETURN(auto p, OpenPipeline(spec, true, false));
  pipeline::Session session(*p);
  pipeline::Prediction pred;
  APX_RETURN_IF_ERROR(
      session.Predict(request, {.exact = args.exact, .delta = args.delta, .tau = args.tau}, &pred));
  const nlohmann::json j = serve::PredictionToJson(*p, pred);
  std::cout << j.dump(2) << "\n";
  return Status::Ok();
}

}  // namespace apx::cli
