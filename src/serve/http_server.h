// serve/http_server.h
//
// The HTTP/JSON front of a Service (cpp-httplib), API in docs/api.md:
//   POST /v1/pipelines/{name}/predict        one request object
//   POST /v1/pipelines/{name}/predict_batch  {"requests": [...]}
//   GET  /v1/pipelines                       what is served
//   GET  /healthz, /readyz, /metrics
// Every error is JSON {"error": {"status": N, "code": "...", "message": "..."}} with the
// matching 4xx/5xx status. Bodies over the size limit get 413; clients that stall longer than
// the read timeout are disconnected. Connections are handled by a fixed pool of threads whose
// backlog is bounded (when it is full the acceptor waits, and the kernel's listen backlog
// pushes back), so no load makes memory grow without bound.
//
// Thread safety: Run() blocks in the calling thread; Stop() may be called from any thread.
#ifndef APX_SERVE_HTTP_SERVER_H_
#define APX_SERVE_HTTP_SERVER_H_

#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"
#include "serve/metrics.h"
#include "serve/service.h"

namespace httplib {
class Server;
}

namespace apx::serve {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                    // 0: any free port (see port())
  size_t max_body_bytes = 1 << 20;    // larger bodies: 413
  size_t max_batch = 1000;            // requests per predict_batch
  int connection_threads = 64;        // concurrent connections served
  std::chrono::seconds io_timeout{5}; // read/write timeout per request (slow clients)
};

class HttpServer {
 public:
  HttpServer(Service& service, Metrics& metrics, HttpOptions options);
  ~HttpServer();

  // Binds the listening socket. Unavailable when the address is taken.
  Status Bind();
  int port() const { return port_; }
  // Serves until Stop(). REQUIRES: Bind() succeeded.
  void Run();
  void Stop();

 private:
  void Routes();

  Service& service_;
  Metrics& metrics_;
  HttpOptions options_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
};

}  // namespace apx::serve

#endif  // APX_SERVE_HTTP_SERVER_H_
