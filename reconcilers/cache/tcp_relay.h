// Forwards TCP connections accepted on a lab gateway's address to a Unix
// socket on the host, so that one cache service (listening only on that
// socket) serves every lab network without listening on any other address.
// One thread polls every listener and connection; each direction buffers at
// most 64 KiB, so a slow reader slows its writer instead of growing memory.
// Thread-safe.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "crds/result.h"

namespace vmlab::reconcilers::cache {

class TcpRelay {
 public:
  // At most `max_connections` relayed at once; more are accepted and closed.
  explicit TcpRelay(std::size_t max_connections = 1024);
  ~TcpRelay();  // closes every listener and connection
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  // Accepts on address:port and forwards to `target`; a listener already
  // there is kept (its target replaced).
  [[nodiscard]] Status Listen(const std::string& address, int port, std::filesystem::path target);
  // Stops accepting on address:port and closes the connections it accepted.
  void Close(const std::string& address, int port);
  [[nodiscard]] std::size_t Connections();

 private:
  struct Listener;
  struct Connection;
  void Run();
  void Wake();

  const std::size_t max_connections_;
  std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::unique_ptr<Listener>> listeners_;
  std::map<int, std::unique_ptr<Connection>> connections_;  // by client descriptor
  int wake_fd_ = -1;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace vmlab::reconcilers::cache
