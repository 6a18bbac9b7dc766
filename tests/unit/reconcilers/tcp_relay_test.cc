// The relay between a lab gateway's TCP port and a cache service's Unix
// socket: bytes pass unchanged both ways, larger than its buffers, with
// half-closes passed on; a missing service closes the client at once; the
// connection limit holds; closing a listener ends its connections.
#include "reconcilers/cache/tcp_relay.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../controller/scratch_dir.h"

namespace vmlab::reconcilers::cache {
namespace {

using testing_support::ScratchDir;

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local));
  socklen_t length = sizeof(local);
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
  close(fd);
  return ntohs(local.sin_port);
}

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  remote.sin_port = htons(static_cast<std::uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof(remote)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads until end of stream (or 5 s of silence).
std::string ReadAll(int fd) {
  std::string all;
  char buffer[8192];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) break;
    const ssize_t got = read(fd, buffer, sizeof(buffer));
    if (got <= 0) break;
    all.append(buffer, static_cast<std::size_t>(got));
  }
  return all;
}

// A Unix socket service answering each connection with what it read,
// reversed, once the client has half-closed.
class ReverseService {
 public:
  explicit ReverseService(const std::filesystem::path& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un local{};
    local.sun_family = AF_UNIX;
    std::strncpy(local.sun_path, path.c_str(), sizeof(local.sun_path) - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    thread_ = std::thread([this] {
      while (true) {
        const int client = accept(fd_, nullptr, nullptr);
        if (client < 0) return;
        std::string got = ReadAll(client);
        std::reverse(got.begin(), got.end());
        for (std::size_t sent = 0; sent < got.size();) {
          const ssize_t put = write(client, got.data() + sent, got.size() - sent);
          if (put <= 0) break;
          sent += static_cast<std::size_t>(put);
        }
        close(client);
      }
    });
  }
  ~ReverseService() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }

 private:
  int fd_ = -1;
  std::thread thread_;
};

TEST(TcpRelayTest, PassesBytesBothWaysWithHalfClose) {
  ScratchDir dir;
  const auto socket_path = dir.path() / "service.sock";
  ReverseService service(socket_path);
  TcpRelay relay;
  const int port = FreePort();
  ASSERT_TRUE(relay.Listen("127.0.0.1", port, socket_path));
  std::string payload(3 * 1024 * 1024 + 17, '\0');  // well beyond the 64 KiB buffers
  std::mt19937 random(7);
  for (char& c : payload) c = static_cast<char>(random() & 0xff);
  const int fd = Connect(port);
  ASSERT_GE(fd, 0);
  std::thread writer([&] {
    for (std::size_t sent = 0; sent < payload.size();) {
      const ssize_t put = write(fd, payload.data() + sent, payload.size() - sent);
      ASSERT_GT(put, 0);
      sent += static_cast<std::size_t>(put);
    }
    shutdown(fd, SHUT_WR);  // the service answers after the end of the request
  });
  const std::string answer = ReadAll(fd);
  writer.join();
  close(fd);
  std::string expected(payload.rbegin(), payload.rend());
  EXPECT_EQ(answer.size(), expected.size());
  EXPECT_TRUE(answer == expected) << "bytes changed in the relay";
}

TEST(TcpRelayTest, NoServiceLimitAndClose) {
  ScratchDir dir;
  const auto socket_path = dir.path() / "service.sock";
  TcpRelay relay(2);
  const int port = FreePort();
  ASSERT_TRUE(relay.Listen("127.0.0.1", port, socket_path));
  {
    const int fd = Connect(port);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(ReadAll(fd), "") << "no service: closed at once (the node falls back)";
    close(fd);
  }
  ReverseService service(socket_path);
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) held.push_back(Connect(port));
  for (int i = 0; i < 100 && relay.Connections() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(relay.Connections(), 2u) << "the third connection is over the limit";
  pollfd third{held[2], POLLIN, 0};
  ASSERT_EQ(poll(&third, 1, 5000), 1);
  char byte = 0;
  EXPECT_EQ(read(held[2], &byte, 1), 0) << "closed by the relay";

  relay.Close("127.0.0.1", port);
  EXPECT_EQ(relay.Connections(), 0u);
  EXPECT_LT(Connect(port), 0) << "nothing listens any more";
  pollfd first{held[0], POLLIN, 0};
  ASSERT_EQ(poll(&first, 1, 5000), 1);
  EXPECT_EQ(read(held[0], &byte, 1), 0) << "its connections were closed";
  for (const int fd : held) close(fd);

  EXPECT_FALSE(relay.Listen("not-an-address", port, socket_path));
}

}  // namespace
}  // namespace vmlab::reconcilers::cache
