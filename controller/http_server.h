// HttpServer: the controller's one HTTP listener (cpprestsdk underneath,
// kept out of this header). Serves GET requests through a handler; refuses
// request bodies over 64 KiB (413) and paths over 2 KiB (414), more requests
// at once than a bound (503), a client over its request rate (429), and, with
// a bearer token, requests without it (401) but for the open paths. Port 0
// picks a free port, reported by port(). Start/Stop from one thread; the
// handler runs on the listener's threads.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "controller/api.h"
#include "crds/result.h"

namespace vmlab::controller {

struct HttpServerLimits {
  // Empty: no authentication. Else every request but to `open_paths` needs
  // "Authorization: Bearer TOKEN".
  std::string bearer_token;
  std::set<std::string, std::less<>> open_paths = {"/healthz", "/readyz"};
  int max_in_flight = 32;  // requests handled at once (cpprestsdk has 40 threads); more get 503
  double requests_per_second = 50;  // per client address, refilled continuously
  double burst = 200;               // a client's bucket size
  // Loopback clients (this host's tools: the CLI, Prometheus, benchmarks)
  // are not rate limited unless this is set; they could read the state dir.
  bool rate_limit_loopback = false;
};

class HttpServer {
 public:
  using Handler = std::function<ApiResponse(std::string_view method, std::string_view path)>;

  // `address` is HOST:PORT, e.g. 127.0.0.1:9440 (port 0: any free port).
  HttpServer(std::string address, Handler handler, HttpServerLimits limits = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  [[nodiscard]] Status Start();
  void Stop();
  [[nodiscard]] int port() const;
  [[nodiscard]] std::string url() const;  // http://HOST:PORT

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits HOST:PORT; an error says what is wrong.
[[nodiscard]] Result<std::pair<std::string, int>> ParseListenAddress(std::string_view address);

// True for localhost, 127.0.0.0/8 and ::1: addresses only this host reaches.
[[nodiscard]] bool IsLoopbackHost(std::string_view host);

// A bearer token from FILE: its first line without surrounding blanks, at
// least 16 printable characters without spaces.
[[nodiscard]] Result<std::string> ReadBearerToken(const std::filesystem::path& file);

}  // namespace vmlab::controller
