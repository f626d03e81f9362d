// cli/commands.h
//
// Subcommands that live in their own files (main.cc parses the arguments and loads specs).
#ifndef APX_CLI_COMMANDS_H_
#define APX_CLI_COMMANDS_H_

#include <string>
#include <vector>

#include "common/status.h"
#include "pipeline/spec.h"
#include "serve/http_server.h"
#include "serve/service.h"

namespace apx::cli {

struct ServeArgs {
  std::string auth_token_file;  // "" and no APXSERVE_AUTH_TOKEN: no authentication
  serve::ServiceOptions service;
  serve::HttpOptions http;
  int train_threads = 0;
};

// `apxserve serve`: prepares every spec (data, model), starts the service and serves HTTP
// until SIGINT or SIGTERM. Progress and the listening address go to stderr.
Status RunServe(const std::vector<pipeline::PipelineSpec>& specs, const ServeArgs& args);

struct LoadgenArgs {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string schedule;      // serve/loadgen.h ParseSchedule; x = exact-level capacity
  int connections = 64;
  int requests = 500;        // distinct test requests, sent round-robin
  uint64_t seed = 1;
  int warmup_s = 0;          // seconds left out of the totals (still in the per-second rows)
  std::string out_json;      // optional report file
  std::string out_svg;       // optional timeline chart
};

// `apxserve loadgen`: open-loop Poisson load against a running server for the pipeline of
// `spec` (its test requests are the load; their exact answers are fetched first), per-second
// report on stdout, JSON and SVG timeline on request.
Status RunLoadgenCommand(const pipeline::PipelineSpec& spec, const LoadgenArgs& args);

}  // namespace apx::cli

#endif  // APX_CLI_COMMANDS_H_
