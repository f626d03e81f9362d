#include "cli/cli_common.h"

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>

namespace apx::cli {

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

Result<pipeline::PipelineSpec> LoadCliSpec(const std::string& path, const GlobalOptions& global) {
  APX_ASSIGN_OR_RETURN(pipeline::PipelineSpec spec, pipeline::LoadSpec(path, global.scale));
  if (global.no_cut_over) spec.guarantee.cut_over = false;
  return spec;
}

Result<std::unique_ptr<pipeline::Pipeline>> OpenPipeline(const pipeline::PipelineSpec& spec, bool load_model,
                                                         bool progress) {
  std::unique_ptr<ProgressBar> bar;
  pipeline::OpenOptions options{.load_model = load_model,
                                .progress = LoadProgress("load " + spec.name, progress, &bar)};
  auto p = pipeline::Pipeline::Open(spec, options);
  if (bar) bar->Finish();
  return p;
}

Result<eval::EvalReport> EvaluateSpec(const std::string& spec_path, int n, int threads,
                                      const GlobalOptions& global) {
  APX_ASSIGN_OR_RETURN(pipeline::PipelineSpec spec, LoadCliSpec(spec_path, global));
  APX_ASSIGN_OR_RETURN(auto p, eval::PrepareAndOpen(spec, threads, true));
  return eval::RunEval(*p, {.n = n, .progress = true});
}

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

}  // namespace apx::cli
