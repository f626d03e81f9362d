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
  serve::ServiceOptions service;
  serve::HttpOptions http;
  int train_threads = 0;
};

// `apxserve serve`: prepares every spec (data, model), starts the service and serves HTTP
// until SIGINT or SIGTERM. Progress and the listening address go to stderr.
Status RunServe(const std::vector<pipeline::PipelineSpec>& specs, const ServeArgs& args);

}  // namespace apx::cli

#endif  // APX_CLI_COMMANDS_H_
