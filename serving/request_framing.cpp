// HTTP/1.1 request framing (RFC 9112 section 6): the head ends at the first empty line; the
// body is Content-Length bytes, or chunked (then the reader takes it); both together, or two
// different lengths, are refused as request smuggling is.
#include "serving/request_framing.h"

#include <cctype>

namespace tiller::serving {

namespace {

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool contains_token_ignore_case(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (equals_ignore_case(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

RequestFrame refuse(int status, std::string reason) {
  RequestFrame f;
  f.state = RequestFrame::State::Refused;
  f.status = status;
  f.reason = std::move(reason);
  return f;
}

}  // namespace

RequestFrame frame_request(std::string_view bytes, const FramingLimits& limits, size_t searched) {
  const size_t end = bytes.find("\r\n\r\n", searched >= 3 ? searched - 3 : 0);
  const bool too_big = end == std::string_view::npos ? bytes.size() >= limits.max_head_bytes : end + 4 > limits.max_head_bytes;
  if (too_big)
    return refuse(431, "the request line and headers are larger than the server accepts (" +
                           std::to_string(limits.max_head_bytes / 1024) + " KiB, its --max-header-kb)");
  if (end == std::string_view::npos) return {};
  RequestFrame f;
  f.head_length = end + 4;
  bool has_length = false, chunked = false, expect_continue = false;
  std::string_view head = bytes.substr(0, end + 2);  // every header line ends with \r\n
  head.remove_prefix(head.find("\r\n") + 2);          // the request line
  while (!head.empty()) {
    const size_t eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // not a header; the HTTP parser judges it
    const std::string_view name = line.substr(0, colon), value = trim(line.substr(colon + 1));
    if (equals_ignore_case(name, "Content-Length")) {
      size_t n = 0;
      if (value.empty() || value.size() > 18) return refuse(400, "Content-Length must be a decimal byte count");
      for (char c : value) {
        if (c < '0' || c > '9') return refuse(400, "Content-Length must be a decimal byte count");
        n = n * 10 + size_t(c - '0');
      }
      if (has_length && n != f.body_length) return refuse(400, "two different Content-Length headers");
      has_length = true;
      f.body_length = n;
    } else if (equals_ignore_case(name, "Transfer-Encoding")) {
      if (!contains_token_ignore_case(value, "chunked"))
        return refuse(501, "only the chunked Transfer-Encoding is supported");
      chunked = true;
    } else if (equals_ignore_case(name, "Expect")) {
      expect_continue = equals_ignore_case(value, "100-continue");
    }
  }
  if (chunked && has_length) return refuse(400, "a request must not carry both Content-Length and Transfer-Encoding");
  if (f.body_length > limits.max_body_bytes)
    return refuse(413, "the request body is larger than the server accepts (" + std::to_string(limits.max_body_bytes >> 20) +
                           " MiB, its --max-body-mb)");
  if (chunked || (expect_continue && f.body_length > 0)) {
    f.state = RequestFrame::State::Head;
    f.length = f.head_length;
    return f;
  }
  f.length = f.head_length + f.body_length;
  f.state = bytes.size() >= f.length ? RequestFrame::State::Complete : RequestFrame::State::Incomplete;
  return f;
}

}  // namespace tiller::serving
