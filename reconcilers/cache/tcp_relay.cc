#include "reconcilers/cache/tcp_relay.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

namespace vmlab::reconcilers::cache {
namespace {

constexpr std::size_t kBufferBytes = 64 * 1024;

// Bytes read from one side, not yet written to the other.
struct Pipe {
  std::array<char, kBufferBytes> data{};
  std::size_t begin = 0;
  std::size_t end = 0;
  bool eof = false;   // the reading side ended
  bool shut = false;  // the writing side was told (shutdown SHUT_WR)
  [[nodiscard]] bool Empty() const { return begin == end; }
};

}  // namespace

struct TcpRelay::Listener {
  int fd = -1;
  std::filesystem::path target;
  // shutdown first: the polling thread may hold the descriptor until it
  // wakes, and the socket must stop listening now.
  ~Listener() {
    if (fd >= 0) {
      shutdown(fd, SHUT_RDWR);
      close(fd);
    }
  }
};

struct TcpRelay::Connection {
  int client = -1;
  int upstream = -1;
  std::pair<std::string, int> listener;
  Pipe to_upstream;
  Pipe to_client;
  ~Connection() {
    for (const int fd : {client, upstream}) {
      if (fd >= 0) {
        shutdown(fd, SHUT_RDWR);
        close(fd);
      }
    }
  }
};

TcpRelay::TcpRelay(std::size_t max_connections) : max_connections_(max_connections) {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] { Run(); });
}

TcpRelay::~TcpRelay() {
  {
    std::lock_guard guard(mutex_);
    stopping_ = true;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
  connections_.clear();
  listeners_.clear();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void TcpRelay::Wake() {
  const std::uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof(one));
}

Status TcpRelay::Listen(const std::string& address, int port, std::filesystem::path target) {
  std::lock_guard guard(mutex_);
  const auto key = std::make_pair(address, port);
  if (auto it = listeners_.find(key); it != listeners_.end()) {
    it->second->target = std::move(target);
    return {};
  }
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, address.c_str(), &local.sin_addr) != 1) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{} is not an IPv4 address", address));
  }
  auto listener = std::make_unique<Listener>();
  listener->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const int yes = 1;
  if (listener->fd < 0 ||
      setsockopt(listener->fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes)) != 0 ||
      bind(listener->fd, reinterpret_cast<const sockaddr*>(&local), sizeof(local)) != 0 ||
      listen(listener->fd, 128) != 0) {
    return MakeError(ErrorCode::kUnavailable, fmt::format("cannot listen on {}:{}: {}", address,
                                                          port, std::strerror(errno)));
  }
  listener->target = std::move(target);
  listeners_.emplace(key, std::move(listener));
  Wake();
  return {};
}

void TcpRelay::Close(const std::string& address, int port) {
  std::lock_guard guard(mutex_);
  const auto key = std::make_pair(address, port);
  listeners_.erase(key);
  std::erase_if(connections_, [&](const auto& entry) { return entry.second->listener == key; });
  Wake();
}

std::size_t TcpRelay::Connections() {
  std::lock_guard guard(mutex_);
  return connections_.size();
}

namespace {

int ConnectUnix(const std::filesystem::path& path) {
  sockaddr_un remote{};
  remote.sun_family = AF_UNIX;
  if (path.native().size() >= sizeof(remote.sun_path)) return -1;
  std::memcpy(remote.sun_path, path.c_str(), path.native().size());
  // Non-blocking: a service whose backlog is full drops the connection
  // (EAGAIN) instead of stalling every other one.
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&remote), sizeof(remote)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Moves bytes from `from` into the pipe; false when the connection failed.
bool Fill(int from, Pipe& pipe) {
  if (pipe.eof || !pipe.Empty()) return true;
  const ssize_t got = read(from, pipe.data.data(), pipe.data.size());
  if (got > 0) {
    pipe.begin = 0;
    pipe.end = static_cast<std::size_t>(got);
  } else if (got == 0) {
    pipe.eof = true;
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    return false;
  }
  return true;
}

// Writes what the pipe holds to `to`; passes an end of stream on.
bool Drain(int to, Pipe& pipe) {
  while (!pipe.Empty()) {
    const ssize_t put =
        send(to, pipe.data.data() + pipe.begin, pipe.end - pipe.begin, MSG_NOSIGNAL);
    if (put > 0) {
      pipe.begin += static_cast<std::size_t>(put);
      continue;
    }
    if (put < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    return false;
  }
  pipe.begin = pipe.end = 0;
  if (pipe.eof && !pipe.shut) {
    shutdown(to, SHUT_WR);
    pipe.shut = true;
  }
  return true;
}

}  // namespace

void TcpRelay::Run() {
  std::vector<pollfd> fds;
  while (true) {
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    {
      std::lock_guard guard(mutex_);
      if (stopping_) return;
      for (const auto& [key, listener] : listeners_) fds.push_back({listener->fd, POLLIN, 0});
      for (const auto& [fd, c] : connections_) {
        short client_events = 0;
        short upstream_events = 0;
        if (!c->to_upstream.eof && c->to_upstream.Empty()) client_events |= POLLIN;
        if (!c->to_client.Empty()) client_events |= POLLOUT;
        if (!c->to_client.eof && c->to_client.Empty()) upstream_events |= POLLIN;
        if (!c->to_upstream.Empty()) upstream_events |= POLLOUT;
        // A side with nothing to do is left out: a hang-up it reports would
        // wake the loop until the other side catches up.
        fds.push_back({client_events != 0 ? c->client : -1, client_events, 0});
        fds.push_back({upstream_events != 0 ? c->upstream : -1, upstream_events, 0});
      }
    }
    if (poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) {
      spdlog::error("relay: poll failed: {}", std::strerror(errno));
      return;
    }
    if (fds[0].revents & POLLIN) {
      std::uint64_t count = 0;
      (void)!read(wake_fd_, &count, sizeof(count));
    }
    std::lock_guard guard(mutex_);
    if (stopping_) return;
    std::map<int, short> ready;
    for (std::size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].fd >= 0 && fds[i].revents != 0) ready[fds[i].fd] = fds[i].revents;
    }
    // New connections (listeners may have changed since the poll began).
    for (const auto& [key, listener] : listeners_) {
      if (!ready.contains(listener->fd)) continue;
      while (true) {
        const int client = accept4(listener->fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (client < 0) break;
        if (connections_.size() >= max_connections_) {
          close(client);
          continue;
        }
        const int upstream = ConnectUnix(listener->target);
        if (upstream < 0) {
          close(client);  // the service is down: the client falls back to its upstream
          continue;
        }
        auto connection = std::make_unique<Connection>();
        connection->client = client;
        connection->upstream = upstream;
        connection->listener = key;
        connections_.emplace(client, std::move(connection));
      }
    }
    for (auto it = connections_.begin(); it != connections_.end();) {
      Connection& c = *it->second;
      const short client_events = ready.contains(c.client) ? ready[c.client] : 0;
      const short upstream_events = ready.contains(c.upstream) ? ready[c.upstream] : 0;
      bool ok = true;
      if (client_events & (POLLIN | POLLHUP | POLLERR)) ok = ok && Fill(c.client, c.to_upstream);
      if (upstream_events & (POLLIN | POLLHUP | POLLERR)) ok = ok && Fill(c.upstream, c.to_client);
      ok = ok && Drain(c.upstream, c.to_upstream) && Drain(c.client, c.to_client);
      const bool done = c.to_upstream.shut && c.to_client.shut;
      if (!ok || done) {
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

}  // namespace vmlab::reconcilers::cache
