// Where one HTTP/1.1 request ends in the bytes read from a connection so far: the head (request
// line and headers, up to the blank line) and the body its Content-Length names. The server's
// connection loop reads whole requests before a worker sees them, and refuses what it must not
// read (oversized heads and bodies, ambiguous lengths) from this alone; parsing the request
// itself is left to the HTTP library.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tiller::serving {

struct RequestFrame {
  enum class State {
    Incomplete,  // more bytes are needed
    Head,        // the head is complete and the body is for the reader to take (chunked, or the
                 // client waits for "100 Continue"); `length` is the head's
    Complete,    // `length` bytes hold the whole request, head and body
    Refused,     // answer `status` with `reason` and close
  };
  State state = State::Incomplete;
  size_t length = 0;
  size_t head_length = 0;
  size_t body_length = 0;  // Content-Length (0 when absent)
  int status = 0;
  std::string reason;
};

struct FramingLimits {
  size_t max_head_bytes = 64u << 10;
  size_t max_body_bytes = 16u << 20;
};

// `searched`: how many leading bytes an earlier call already found no end of head in (a client
// sending its head byte by byte would otherwise cost quadratic time).
RequestFrame frame_request(std::string_view bytes, const FramingLimits& limits, size_t searched = 0);

}  // namespace tiller::serving
