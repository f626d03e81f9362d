// serve/http_server.h
//
// The HTTP/JSON front of a Service, API in docs/api.md:
//   POST /v1/pipelines/{name}/predict        one request object
//   POST /v1/pipelines/{name}/predict_batch  {"requests": [...]}
//   GET  /v1/pipelines                       what is served
//   GET  /healthz, /readyz, /metrics
// Every error is JSON {"error": {"status": N, "code": "...", "message": "..."}} with the
// matching 4xx/5xx status; refusals for load (503) carry Retry-After. With an auth token,
// requests without it get 401 (health probes stay open).
//
// I/O is event-driven (Boost.Beast over Asio, epoll): a connection costs a socket and a few
// KiB, never a thread, so idle and slow clients cannot take the server's capacity. Each
// request must arrive whole within `request_timeout` of its first byte (a client that
// trickles bytes is cut off however often it sends); a kept-alive connection may idle
// `idle_timeout` between requests. Requests on one connection are answered in order, so
// pipelined requests (several in one write) all get their answers. Predictions run on the
// Service's workers: the event loop only parses, routes and writes. A request not whole by its
// deadline gets 408. Beyond `max_connections` open connections, 64 more are read for
// /healthz and /readyz only (answered, then closed); other requests on them, and connections
// beyond those, get 503 and are closed.
//
// Thread safety: Run() blocks in the calling thread; Stop() may be called from any thread
// (it stops accepting, lets answers in flight be written, then returns from Run()).
#ifndef APX_SERVE_HTTP_SERVER_H_
#define APX_SERVE_HTTP_SERVER_H_

#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"
#include "serve/metrics.h"
#include "serve/service.h"

namespace apx::serve {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                                   // 0: any free port (see port())
  size_t max_body_bytes = 1 << 20;                   // larger bodies: 413
  size_t max_batch = 1000;                           // requests per predict_batch
  size_t max_connections = 10000;                    // open at once; beyond: 503 and close
  int io_threads = 1;                                // event-loop threads
  std::chrono::milliseconds request_timeout{5000};   // first byte to last of one request
  std::chrono::milliseconds idle_timeout{10000};     // keep-alive wait between requests
  // Non-empty: every route but /healthz and /readyz requires "Authorization: Bearer <token>"
  // (compared in constant time); others get 401.
  std::string auth_token;
};

// Checks that `host` is an IP address and `host:port` can be bound now (then releases it), so
// that a bad address fails before any data is loaded. InvalidArgument / Unavailable.
Status CheckListenAddress(const std::string& host, int port);
// True for 127.0.0.0/8, ::1 and ::ffff:127.x (only this machine can connect).
bool IsLoopback(const std::string& host);

class HttpServer {
 public:
  HttpServer(Service& service, Metrics& metrics, HttpOptions options);
  ~HttpServer();  // REQUIRES: Run() has returned or was never called
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens (exclusively: no SO_REUSEPORT). InvalidArgument for a bad host or port,
  // Unavailable when the address is taken.
  Status Bind();
  int port() const;
  // Serves until Stop(). REQUIRES: Bind() succeeded.
  void Run();
  void Stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace apx::serve

#endif  // APX_SERVE_HTTP_SERVER_H_
