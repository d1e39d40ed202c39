// The progress line of the long jobs (engine/progress.h), written to a file as in a log: a line per
// draw, drawn at once, then at most every 10 s, the final update always and only once.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "engine/progress.h"
#include "test_util.h"

using namespace tiller;

namespace {

// What `body` writes to stderr (redirected to a file, so the line is not on a terminal).
template <typename F>
std::string captured_stderr(F&& body) {
  const std::filesystem::path file = std::filesystem::temp_directory_path() / ("tiller_progress_" + std::to_string(getpid()));
  std::fflush(stderr);
  const int saved = dup(STDERR_FILENO);
  const int fd = open(file.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
  REQUIRE(fd >= 0);
  dup2(fd, STDERR_FILENO);
  close(fd);
  body();
  std::fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::stringstream text;
  text << std::ifstream(file).rdbuf();
  std::filesystem::remove(file);
  return text.str();
}

}  // namespace

TEST_CASE("progress line: durations read as a person writes them") {
  CHECK(duration_text(0) == "0s");
  CHECK(duration_text(59.9) == "59s");
  CHECK(duration_text(185) == "3m05s");
  CHECK(duration_text(3720) == "1h02m");
}

TEST_CASE("progress line: in a log, the first update and the final one are drawn, the final once") {
  const std::string text = captured_stderr([] {
    ProgressLine line("eval", "items", true, 10);
    line.update(12, 110, "3.0 tok/s");          // first: drawn
    line.update(13, 110, "3.1 tok/s");          // within 10 s of it: not drawn
    line.update(110, 110, "3.2 tok/s", true);   // final: drawn, with the time taken
    line.update(110, 110, "3.3 tok/s", true);   // after the final: nothing
  });
  INFO(text);
  std::istringstream lines(text);
  std::string first, last, extra;
  REQUIRE(std::getline(lines, first));
  REQUIRE(std::getline(lines, last));
  CHECK_FALSE(std::getline(lines, extra));
  CHECK(first.starts_with("eval [##......................] 12/110  "));  // 24 wide: 12/110 fills 2
  CHECK(first.find(" items/s  3.0 tok/s  ETA ") != std::string::npos);
  CHECK(last.starts_with("eval [########################] 110/110  "));
  CHECK(last.find("3.2 tok/s  in 0s") != std::string::npos);
}

TEST_CASE("progress line: disabled, it writes nothing") {
  const std::string text = captured_stderr([] {
    ProgressLine line("batch", "requests", false);
    CHECK_FALSE(line.due());
    line.update(1, 2);
    line.update(2, 2, {}, true);
  });
  CHECK(text.empty());
}
