// cli/cli_common.h
//
// What the `apxserve` subcommands share: the exit codes, loading a spec with the global
// options applied, opening a pipeline with a progress bar, and the CLI11 number validators.
#ifndef APX_CLI_CLI_COMMON_H_
#define APX_CLI_CLI_COMMON_H_

#include <memory>
#include <string>

#include "cli/commands.h"
#include "common/progress.h"
#include "common/status.h"
#include "eval/eval.h"
#include "pipeline/pipeline.h"
#include "pipeline/spec.h"
#include "store/table.h"

namespace CLI {
class Validator;  // <CLI/CLI.hpp>, included where the validators are made and used
}  // namespace CLI

namespace apx::cli {

// Exit codes: 0 success, 2 bad input (spec, request, arguments), 1 anything else.
int ExitCode(const Status& s);

// Prints "apxserve: error: <message>" to stderr and returns ExitCode(s).
int Fail(const Status& s);

// A progress callback that draws into *bar (created on the first call); nullptr when
// !enabled.
store::ProgressFn LoadProgress(const std::string& label, bool enabled, std::unique_ptr<ProgressBar>* bar);

// Loads a spec with the global options applied (--scale, --no-cut-over).
Result<pipeline::PipelineSpec> LoadCliSpec(const std::string& path, const GlobalOptions& global);

// Opens the spec's pipeline (data, and the model when load_model), with a progress bar on
// stderr when `progress`.
Result<std::unique_ptr<pipeline::Pipeline>> OpenPipeline(const pipeline::PipelineSpec& spec, bool load_model,
                                                         bool progress);

// Loads a spec at --scale, prepares it (generate data, train a missing model) and evaluates
// n test requests (-1: the spec's test.n).
Result<eval::EvalReport> EvaluateSpec(const std::string& spec_path, int n, int threads,
                                      const GlobalOptions& global);

// CLI11's Range lets NaN through (both comparisons are false): these validators do not.
// `ok` says whether a parsed number is acceptable; `what` describes the acceptable ones.
CLI::Validator NumberWhere(bool (*ok)(double), const std::string& what);
CLI::Validator OpenUnitInterval();
CLI::Validator FiniteNonNegative();

}  // namespace apx::cli

#endif  // APX_CLI_CLI_COMMON_H_
