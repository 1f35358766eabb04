#include "serve/connection.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace imgjudge::serve {
namespace {

// The numeric host and port of an IPv4/IPv6 socket address.
bool address_of(const sockaddr_storage& address, std::string& host, int& port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    if (!inet_ntop(AF_INET, &in.sin_addr, text, sizeof text)) return false;
    port = ntohs(in.sin_port);
  } else if (address.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    if (!inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text)) return false;
    port = ntohs(in6.sin6_port);
  } else {
    return false;
  }
  host = text;
  return true;
}

bool socket_matches(int fd, const std::string& local_address, int local_port, const std::string& peer_address,
                    int peer_port) {
  struct stat info{};
  if (fstat(fd, &info) != 0 || !S_ISSOCK(info.st_mode)) return false;
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  std::string host;
  int port = -1;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 || !address_of(address, host, port) ||
      port != peer_port || host != peer_address) {
    return false;
  }
  length = sizeof address;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 || !address_of(address, host, port)) {
    return false;
  }
  return port == local_port && host == local_address;
}

}  // namespace

int find_connection_socket(const std::string& local_address, int local_port, const std::string& peer_address,
                           int peer_port) {
  if (local_port <= 0 || peer_port <= 0) return -1;
  DIR* fds = opendir("/proc/self/fd");
  if (!fds) return -1;
  int found = -1;
  while (const dirent* entry = readdir(fds)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(fds)) continue;
    if (socket_matches(static_cast<int>(fd), local_address, local_port, peer_address, peer_port)) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(fds);
  return found;
}

int stop_reading_connections(int port,
                             const std::function<bool(const std::string&, const std::string&, int)>& busy) {
  DIR* fds = opendir("/proc/self/fd");
  if (!fds) return 0;
  int stopped = 0;
  while (const dirent* entry = readdir(fds)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(fds)) continue;
    struct stat info{};
    if (fstat(static_cast<int>(fd), &info) != 0 || !S_ISSOCK(info.st_mode)) continue;
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    std::string host;
    int local_port = -1;
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
        !address_of(address, host, local_port) || local_port != port) {
      continue;
    }
    const std::string local_host = host;
    length = sizeof address;
    int peer_port = -1;
    if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
        !address_of(address, host, peer_port)) {
      continue;  // not connected
    }
    if (busy(local_host, host, peer_port)) continue;
    if (::shutdown(static_cast<int>(fd), SHUT_RD) == 0) ++stopped;
  }
  closedir(fds);
  return stopped;
}

bool peer_has_closed(int fd) {
  pollfd watched{fd, POLLIN | POLLRDHUP, 0};
  int ready;
  do {
    ready = poll(&watched, 1, 0);
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) return false;
  if (watched.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return true;
  if (watched.revents & POLLIN) {
    char byte;
    const ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;  // orderly close
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  }
  return false;
}

}  // namespace imgjudge::serve
