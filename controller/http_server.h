// HttpServer: the controller's one HTTP listener (cpprestsdk underneath,
// kept out of this header). Serves GET requests through a handler; refuses
// request bodies over 64 KiB (413) and paths over 2 KiB (414). Port 0 picks a
// free port, reported by port(). Start/Stop from one thread; the handler runs
// on the listener's threads.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "controller/api.h"
#include "crds/result.h"

namespace vmlab::controller {

class HttpServer {
 public:
  using Handler = std::function<ApiResponse(std::string_view method, std::string_view path)>;

  // `address` is HOST:PORT, e.g. 127.0.0.1:9440 (port 0: any free port).
  HttpServer(std::string address, Handler handler);
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

}  // namespace vmlab::controller
