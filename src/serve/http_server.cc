#include "serve/http_server.h"

#include <httplib.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "common/json.h"
#include "serve/api_json.h"

namespace apx::serve {
namespace {

// httplib's connection task queue with a bounded backlog: enqueue waits while `backlog`
// connections are already waiting for a thread (httplib's own ThreadPool queues without bound).
class BoundedTaskQueue : public httplib::TaskQueue {
 public:
  BoundedTaskQueue(int threads, size_t backlog) : backlog_(backlog) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~BoundedTaskQueue() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return jobs_.size() < backlog_ || stopping_; });
    jobs_.push_back(std::move(fn));
    lock.unlock();
    not_empty_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ && threads_.empty()) return;
      stopping_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void Work() {
    while (true) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        not_empty_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      not_full_.notify_one();
      fn();
    }
  }

  const size_t backlog_;
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

void SendError(httplib::Response& res, int status, std::string_view code, std::string_view message) {
  res.status = status;
  res.set_content(ErrorJson(status, code, message), "application/json");
}

void SendStatus(httplib::Response& res, const Status& status) {
  SendError(res, HttpStatusOf(status), StatusCodeName(status.code()), status.message());
}

// Parses a JSON body. InvalidArgument naming the problem.
Result<nlohmann::json> ParseBody(const httplib::Request& req) { return ParseJson(req.body, "body"); }

// One request object -> ServeRequest for pipeline `p`.
Result<ServeRequest> ToServeRequest(const pipeline::Pipeline& p, nlohmann::json object) {
  ServeRequest r;
  APX_RETURN_IF_ERROR(ExtractServeOptions(object, &r));
  APX_ASSIGN_OR_RETURN(r.request, pipeline::ParseRequestValue(p.spec(), object));
  return r;
}

int HttpStatusOfResult(const ServeResult& r) {
  switch (r.outcome) {
    case Outcome::kOk:
    case Outcome::kDegraded: return 200;
    case Outcome::kDropped:
    case Outcome::kRejected: return 503;
    case Outcome::kError: return HttpStatusOf(r.status);
  }
  return 500;
}

nlohmann::json ResultJson(const pipeline::Pipeline& p, const ServeResult& r) {
  if (r.outcome == Outcome::kOk || r.outcome == Outcome::kDegraded) return ServeResultToJson(p, r);
  return ErrorValue(HttpStatusOfResult(r),
                    r.outcome == Outcome::kError ? StatusCodeName(r.status.code()) : OutcomeName(r.outcome),
                    r.status.message());
}

}  // namespace

HttpServer::HttpServer(Service& service, Metrics& metrics, HttpOptions options)
    : service_(service), metrics_(metrics), options_(std::move(options)),
      server_(std::make_unique<httplib::Server>()) {
  const int threads = options_.connection_threads;
  server_->new_task_queue = [threads] { return new BoundedTaskQueue(threads, 4 * static_cast<size_t>(threads)); };
  server_->set_payload_max_length(options_.max_body_bytes);
  server_->set_read_timeout(options_.io_timeout);
  server_->set_write_timeout(options_.io_timeout);
  server_->set_keep_alive_max_count(1'000'000);
  server_->set_tcp_nodelay(true);  // headers and body leave in separate writes: no Nagle delay
  server_->set_keep_alive_timeout(10);
  Routes();
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Bind() {
  if (options_.port == 0) {
    port_ = server_->bind_to_any_port(options_.host);
    if (port_ <= 0) return Status::Unavailable("cannot bind to " + options_.host);
    return Status::Ok();
  }
  if (!server_->bind_to_port(options_.host, options_.port)) {
    return Status::Unavailable("cannot listen on " + options_.host + ":" +
                               std::to_string(options_.port) + " (address in use?)");
  }
  port_ = options_.port;
  return Status::Ok();
}

void HttpServer::Run() { server_->listen_after_bind(); }

void HttpServer::Stop() {
  if (server_) server_->stop();
}

void HttpServer::Routes() {
  httplib::Server& s = *server_;
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(res, 500, "Internal", what);
  });
  // Statuses set by httplib itself (404 no route, 413 too large, 400 bad request line, ...)
  // get a JSON body too.
  s.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) {
      SendError(res, 404, "NotFound", "no route for " + req.method + " " + req.path);
    } else if (res.status == 413) {
      SendError(res, 413, "PayloadTooLarge",
                "request body exceeds " + std::to_string(options_.max_body_bytes) + " bytes");
    } else {
      SendError(res, res.status, "HttpError", "HTTP status " + std::to_string(res.status));
    }
  });

  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  s.Get("/readyz", [](const httplib::Request&, httplib::Response& res) {
    // The server listens only once every pipeline is loaded and calibrated.
    res.set_content(R"({"status":"ready"})", "application/json");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.Render(), "text/plain; version=0.0.4");
  });
  s.Get("/v1/pipelines", [this](const httplib::Request&, httplib::Response& res) {
    nlohmann::json list = nlohmann::json::array();
    for (int i = 0; i < service_.num_pipelines(); ++i) {
      const pipeline::Pipeline& p = service_.pipeline(i);
      const pipeline::PipelineSpec& spec = p.spec();
      const PipelineStatus st = service_.Snapshot(i);
      nlohmann::json fields = nlohmann::json::object();
      for (const pipeline::RequestField& f : spec.request_fields) {
        fields[f.name] = f.type == pipeline::FieldType::kNumber      ? "number"
                         : f.type == pipeline::FieldType::kTimestamp ? "timestamp"
                                                                     : "string";
      }
      nlohmann::json service_ms = nlohmann::json::object();
      for (int l = 0; l < kNumLevels; ++l) service_ms[std::string(LevelName(l))] = st.service_ms[l];
      list.push_back({{"name", spec.name},
                      {"task", model::TaskName(spec.task)},
                      {"delta", spec.guarantee.delta},
                      {"tau", spec.guarantee.tau},
                      {"request_fields", fields},
                      {"features", p.feature_names()},
                      {"level", LevelName(st.level)},
                      {"arrival_rate", st.arrival_rate},
                      {"desired_replicas", st.desired_replicas},
                      {"service_ms", service_ms}});
    }
    res.set_content(nlohmann::json{{"pipelines", list}, {"slo_ms", service_.options().slo_ms},
                                   {"workers", service_.options().workers},
                                   {"load_control", service_.options().load_control}}
                        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                    "application/json");
  });

  auto find = [this](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    const int index = service_.Find(name);
    if (index < 0) {
      std::string known;
      for (int i = 0; i < service_.num_pipelines(); ++i) {
        known += (known.empty() ? "" : ", ") + service_.pipeline(i).spec().name;
      }
      SendError(res, 404, "NotFound", "unknown pipeline '" + name + "' (serving: " + known + ")");
    }
    return index;
  };
  s.Post(R"(/v1/pipelines/([^/]+)/predict)", [this, find](const httplib::Request& req, httplib::Response& res) {
    const int index = find(req, res);
    if (index < 0) return;
    auto body = ParseBody(req);
    if (!body.ok()) return SendStatus(res, body.status());
    auto request = ToServeRequest(service_.pipeline(index), std::move(*body));
    if (!request.ok()) return SendStatus(res, request.status());
    const ServeResult result = service_.Handle(index, std::move(*request));
    res.status = HttpStatusOfResult(result);
    if (result.outcome == Outcome::kRejected || result.outcome == Outcome::kDropped) {
      res.set_header("Retry-After", "1");
    }
    res.set_content(DumpJson(ResultJson(service_.pipeline(index), result)), "application/json");
  });
  s.Post(R"(/v1/pipelines/([^/]+)/predict_batch)", [this, find](const httplib::Request& req,
                                                                httplib::Response& res) {
    const int index = find(req, res);
    if (index < 0) return;
    auto body = ParseBody(req);
    if (!body.ok()) return SendStatus(res, body.status());
    if (!body->is_object() || !body->contains("requests") || !(*body)["requests"].is_array()) {
      return SendError(res, 400, "InvalidArgument", R"(body must be {"requests": [ ... ]})");
    }
    nlohmann::json& items = (*body)["requests"];
    if (items.size() > options_.max_batch) {
      return SendError(res, 413, "PayloadTooLarge",
                       "batch of " + std::to_string(items.size()) + " requests exceeds the limit of " +
                           std::to_string(options_.max_batch));
    }
    // Validate everything first: a malformed item fails the batch before any work is done.
    std::vector<ServeRequest> requests;
    for (size_t i = 0; i < items.size(); ++i) {
      auto r = ToServeRequest(service_.pipeline(index), std::move(items[i]));
      if (!r.ok()) return SendStatus(res, r.status().WithPrefix("requests[" + std::to_string(i) + "]"));
      requests.push_back(std::move(*r));
    }
    nlohmann::json results = nlohmann::json::array();
    for (ServeRequest& r : requests) {
      results.push_back(ResultJson(service_.pipeline(index), service_.Handle(index, std::move(r))));
    }
    res.set_content(DumpJson(nlohmann::json{{"results", results}}), "application/json");
  });
  // Right path, wrong method: 405 rather than 404.
  auto not_allowed = [](const httplib::Request& req, httplib::Response& res) {
    SendError(res, 405, "MethodNotAllowed", req.method + " is not allowed on " + req.path);
  };
  s.Get(R"(/v1/pipelines/([^/]+)/(predict|predict_batch))", not_allowed);
  s.Post("/v1/pipelines", not_allowed);
}

}  // namespace apx::serve
