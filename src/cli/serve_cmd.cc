// `apxserve serve` (docs/api.md, docs/serving.md).
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <thread>

#include <pthread.h>

#include "cli/cli_common.h"
#include "common/progress.h"
#include "eval/eval.h"
#include "eval/requests.h"
#include "serve/metrics.h"

namespace apx::cli {

namespace {

// The bearer token: the first line of --auth-token-file, else $APXSERVE_AUTH_TOKEN, else none.
Result<std::string> AuthToken(const std::string& file) {
  std::string token;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return Status::NotFound("--auth-token-file '" + file + "' cannot be read");
    std::getline(in, token);
    if (!token.empty() && token.back() == '\r') token.pop_back();
    if (token.empty()) return Status::InvalidArgument("--auth-token-file '" + file + "' starts with an empty line");
  } else if (const char* env = std::getenv("APXSERVE_AUTH_TOKEN"); env != nullptr) {
    token = env;
    if (token.empty()) return Status::InvalidArgument("APXSERVE_AUTH_TOKEN is set but empty");
  }
  if (!token.empty() && token.size() < 16) {
    return Status::InvalidArgument("the auth token has " + std::to_string(token.size()) +
                                   " characters; use at least 16 (e.g. `openssl rand -hex 24`)");
  }
  return token;
}

}  // namespace

Status RunServe(const ServeArgs& input_args, const GlobalOptions& global) {
  if (input_args.spec_paths.empty()) return Status::InvalidArgument("serve: no pipelines given");
  ServeArgs args = input_args;
  // Every flag (level, token, address) is checked before any spec or data is loaded.
  args.service.load_control = args.control == "on";
  args.http.request_timeout = std::chrono::milliseconds(std::llround(args.request_timeout_s * 1000));
  args.http.idle_timeout = std::chrono::milliseconds(std::llround(args.idle_timeout_s * 1000));
  APX_ASSIGN_OR_RETURN(args.service.fixed_level, serve::ParseLevel(args.level));
  APX_ASSIGN_OR_RETURN(args.http.auth_token, AuthToken(args.auth_token_file));
  APX_RETURN_IF_ERROR(serve::CheckListenAddress(args.http.host, args.http.port));
  std::vector<pipeline::PipelineSpec> specs;
  for (const std::string& path : args.spec_paths) {
    APX_ASSIGN_OR_RETURN(pipeline::PipelineSpec spec, LoadCliSpec(path, global));
    specs.push_back(std::move(spec));
  }
  if (!serve::IsLoopback(args.http.host) && args.http.auth_token.empty()) {
    std::fprintf(stderr,
                 "apxserve: WARNING: listening on %s, reachable from other machines, WITHOUT "
                 "authentication: anyone who can connect can use and load this server. Set "
                 "--auth-token-file (or APXSERVE_AUTH_TOKEN), or listen on 127.0.0.1 behind a proxy.\n",
                 args.http.host.c_str());
  }
  // SIGINT/SIGTERM are taken by one thread (sigwait) that stops the server; block them in
  // every thread started from here on.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::vector<std::unique_ptr<pipeline::Pipeline>> pipelines;
  std::vector<std::vector<pipeline::Request>> calibration;
  for (const pipeline::PipelineSpec& spec : specs) {
    APX_ASSIGN_OR_RETURN(auto p, eval::PrepareAndOpen(spec, args.train_threads, true));
    // The levels are calibrated on the spec's test requests.
    pipeline::RequestSetSpec set = spec.test;
    set.n = std::max(1, std::min(set.n, args.service.calibration_requests));
    std::vector<double> labels;
    APX_RETURN_IF_ERROR(eval::MakeRequests(*p, set, &calibration.emplace_back(), &labels));
    pipelines.push_back(std::move(p));
  }
  std::unique_ptr<ProgressBar> bar;
  auto service = serve::Service::Start(std::move(pipelines), std::move(calibration), args.service, [&](int64_t done, int64_t total) {
    if (bar == nullptr) bar = std::make_unique<ProgressBar>("calibrate levels", total);
    bar->Update(done);
  });
  if (bar) bar->Finish();
  if (!service.ok()) return service.status();
  serve::Metrics metrics(**service);
  (*service)->set_observer([&metrics](int index, const serve::ServeResult& r) { metrics.Observe(index, r); });
  serve::HttpServer server(**service, metrics, args.http);
  APX_RETURN_IF_ERROR(server.Bind());

  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fprintf(stderr, "apxserve: signal %d, stopping\n", sig);
    server.Stop();
  });
  const serve::ServiceOptions& o = (*service)->options();
  std::fprintf(stderr,
               "apxserve: serving %d pipeline(s) on http://%s:%d (workers %d, queue %zu, SLO %g ms, "
               "load control %s, authentication %s)\n",
               (*service)->num_pipelines(), args.http.host.c_str(), server.port(), o.workers,
               o.queue_capacity, o.slo_ms, o.load_control ? "on" : "off",
               args.http.auth_token.empty() ? "off" : "bearer token");
  for (int i = 0; i < (*service)->num_pipelines(); ++i) {
    const serve::PipelineStatus st = (*service)->Snapshot(i);
    std::fprintf(stderr, "  %s: service ms exact %.3f, spec %.3f, relaxed %.3f, relaxed2 %.3f, capped %.3f\n",
                 st.name.c_str(), st.service_ms[0], st.service_ms[1], st.service_ms[2],
                 st.service_ms[3], st.service_ms[4]);
  }
  std::fflush(stderr);
  server.Run();
  // Run() returns after Stop(): from the signal thread, or because listening failed.
  pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
  return Status::Ok();
}

}  // namespace apx::cli
