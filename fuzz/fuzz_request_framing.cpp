// The server's request framing (serving/request_framing.h) over arbitrary bytes, fed whole and
// in pieces as a connection delivers them: the verdict never depends on how the bytes arrived,
// and a complete request never claims more bytes than were read.
#include "fuzz/fuzz_target.h"
#include "serving/request_framing.h"

using namespace tiller;
using namespace tiller::serving;

TILLER_FUZZ_TARGET(request_framing, "HTTP/1.1 request framing: end of head, Content-Length, chunked, limits") {
  FramingLimits limits;
  limits.max_head_bytes = 4096;
  limits.max_body_bytes = 65536;
  const RequestFrame whole = frame_request(data, limits);
  using State = RequestFrame::State;
  if (whole.state == State::Complete) fuzz::fuzz_check(whole.length <= data.size(), "a complete request lies inside the bytes");
  if (whole.state == State::Head || whole.state == State::Complete)
    fuzz::fuzz_check(whole.head_length >= 4 && whole.head_length <= limits.max_head_bytes, "the head fits its limit");
  if (whole.state == State::Refused) fuzz::fuzz_check(whole.status >= 400 && !whole.reason.empty(), "a refusal says why");
  // Delivered in pieces of 7 bytes as the connection loop takes them: the search for the end of
  // the head resumes where the last call stopped, and once the head is found only the body's
  // bytes are awaited (`searched` promises no end of head in those bytes, which a found head and
  // a body with "\r\n\r\n" in it would break).
  RequestFrame f;
  size_t searched = 0;
  for (size_t n = std::min<size_t>(7, data.size()); ; n = std::min(n + 7, data.size())) {
    if (f.head_length == 0) {
      f = frame_request(data.substr(0, n), limits, searched);
      searched = n;
    } else if (f.state == State::Incomplete && n >= f.length) {
      f.state = State::Complete;
    }
    if (f.state != State::Incomplete || n == data.size()) break;
  }
  if (f.state == State::Incomplete || f.state == State::Refused)
    fuzz::fuzz_check(f.state == whole.state || whole.state == State::Complete || whole.state == State::Head,
                     "pieces and the whole agree");
  else fuzz::fuzz_check(f.head_length == whole.head_length, "pieces find the same end of head");
}
