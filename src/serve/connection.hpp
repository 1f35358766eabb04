// Watching the client of a request while its image is judged, so that a
// client that goes away cancels the work instead of leaving a worker busy
// with an answer nobody will read.
//
// cpp-httplib 0.11 gives a handler no view of its connection (later versions
// added Request::is_connection_closed). A TCP connection is identified by its
// address pair, which the Request does carry: the open socket whose local and
// peer addresses are the request's is this request's connection, and it stays
// open until the handler returns, so it cannot be closed and reused meanwhile.
#pragma once

#include <functional>
#include <string>

namespace imgjudge::serve {

/// The descriptor of this process's connected TCP socket with these local and
/// peer addresses (numeric, as cpp-httplib writes them), or -1 if there is none.
int find_connection_socket(const std::string& local_address, int local_port, const std::string& peer_address,
                           int peer_port);

/// True once the peer of the connected socket `fd` has closed its end (or the
/// connection failed). Data the peer sent after its request (a pipelined next
/// request) is left unread and does not count as closing.
bool peer_has_closed(int fd);

/// Shuts down the reading side of every connected socket whose local port is
/// `port` (the server's accepted connections) and for which `busy(local address,
/// peer address, peer port)` is false, so that a thread waiting for a keep-alive
/// connection's next request sees its end at once instead of after the keep-alive
/// timeout. Not for a connection whose answer is still to be written: cpp-httplib
/// checks a socket is alive (readable data or none pending) before writing to it.
/// Returns how many sockets it shut down.
int stop_reading_connections(int port,
                             const std::function<bool(const std::string&, const std::string&, int)>& busy);

}  // namespace imgjudge::serve
