// Weight files that change on disk while tiller has them mapped: a write in place is detected and
// refused (at load's end, when a fingerprint is recorded, by the server's /health and requests,
// and before tiller batch writes a line), a replacement by rename keeps the mapped file whole, and
// a file cut short under a running generation ends it with a message naming the file.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "cli_run.h"
#include "engine/error.h"
#include "engine/file_stamp.h"
#include "engine/json_file.h"
#include "kernels/cpu/cpu_backend.h"
#include "models/model.h"
#include "server_harness.h"
#include "steering/model_fingerprint.h"
#include "test_util.h"

extern char** environ;

using namespace tiller;
namespace fs = std::filesystem;

namespace {

// A private copy of a fixture model, so it can be written to.
fs::path copy_model(const std::string& fixture, const std::string& name) {
  const fs::path dir = test::scratch_path(name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(test::fixtures_dir() / "models" / fixture))
    fs::copy_file(e.path(), dir / e.path().filename());
  return dir;
}

// Overwrites `n` bytes in the middle of the file, in place (same inode, same size).
void scribble(const fs::path& file, size_t n = 64) {
  const int fd = ::open(file.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  const std::string junk(n, '\x5a');
  REQUIRE(::pwrite(fd, junk.data(), junk.size(), off_t(fs::file_size(file) / 2)) == ssize_t(n));
  ::close(fd);
}

// Replaces the file the way downloaders do: a new file renamed over the old one.
void replace_by_rename(const fs::path& file) {
  const fs::path tmp = file.string() + ".new";
  fs::copy_file(file, tmp);
  fs::rename(tmp, file);
}

}  // namespace

TEST_CASE("file stamps: a write in place is Modified (even with its time restored), a rename is Replaced") {
  const fs::path dir = test::scratch_path("stamps");
  fs::create_directories(dir);
  const fs::path f = dir / "w.bin";
  { std::ofstream(f) << "0123456789"; }
  const FileStamp then = *FileStamp::of(f);
  CHECK(compare(then, FileStamp::of(f)) == FileChange::None);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  scribble(f, 2);
  std::string what;
  CHECK(compare(then, FileStamp::of(f), &what) == FileChange::Modified);
  CHECK(what.find("written to") != std::string::npos);
  // Restoring the modification time does not hide the write: the change time moved too.
  const timespec times[2] = {then.modified, then.modified};
  REQUIRE(::utimensat(AT_FDCWD, f.c_str(), times, 0) == 0);
  CHECK(compare(then, FileStamp::of(f)) == FileChange::Modified);
  { std::ofstream(f, std::ios::app) << "more"; }
  CHECK(compare(then, FileStamp::of(f), &what) == FileChange::Modified);
  CHECK(what.find("size went from 10 to 14") != std::string::npos);
  const FileStamp now = *FileStamp::of(f);
  replace_by_rename(f);
  CHECK(compare(now, FileStamp::of(f), &what) == FileChange::Replaced);
  fs::remove(f);
  CHECK(compare(now, FileStamp::of(f), &what) == FileChange::Replaced);
  CHECK(what.find("deleted") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("mapped weights: written in place they are refused; replaced by rename the mapping stays whole") {
  const fs::path dir = copy_model("llama_gqa", "mapped");
  const fs::path weights = dir / "model.safetensors";
  CpuBackend backend(1);
  {
    auto model = Model::load(dir, backend);
    const std::string fp = model_fingerprint(*model);
    replace_by_rename(weights);  // the mapping keeps the old inode: same bytes, nothing to refuse
    CHECK_NOTHROW(model->check_files_unchanged("testing"));
    CHECK(model_fingerprint(*model) == fp);
  }
  auto model = Model::load(dir, backend);
  scribble(weights);
  CHECK_THROWS_WITH_AS(model->check_files_unchanged("testing"),
                       doctest::Contains("changed on disk while tiller had it mapped"), Error);
  CHECK_THROWS_WITH_AS(model_fingerprint(*model), doctest::Contains("noticed while computing its fingerprint"), Error);
  fs::remove_all(dir);
}

#if TILLER_HAVE_SERVER
TEST_CASE("mapped weights: the server answers 503 on /health and to requests once its weights change on disk") {
  const fs::path dir = copy_model("llama_gqa", "serve-change");
  serving::SchedulerOptions so;
  so.max_batch = 2;
  test::TestServer s(dir, so);
  CHECK(s.client().Get("/health")->status == 200);
  CHECK(test::post_json(s, "/v1/completions", R"({"prompt":[1,2,3],"max_tokens":2})").first == 200);
  scribble(dir / "model.safetensors");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // the check runs at most once a second
  auto health = s.client().Get("/health");
  CHECK(health->status == 503);
  CHECK(health->body.find("changed on disk") != std::string::npos);
  auto [status, body] = test::post_json(s, "/v1/completions", R"({"prompt":[1,2,3],"max_tokens":2})");
  CHECK(status == 503);
  CHECK(body["error"]["message"].get<std::string>().find("noticed while serving") != std::string::npos);
  s.stop();
  fs::remove_all(dir);
}
#endif

TEST_CASE("mapped weights: tiller batch stops before writing a line from weights that changed") {
  const fs::path dir = copy_model("llama_gqa", "batch-change");
  const fs::path in = dir / "in.jsonl", out = dir / "out.jsonl";
  {
    std::ofstream f(in);
    for (int i = 0; i < 64; i++)
      f << json({{"id", i}, {"prompt", {1, 5 + i, 9}}, {"max_tokens", 60}, {"ignore_eos", true}}).dump() << "\n";
  }
  const std::string log = (dir / "log.txt").string();
  std::vector<std::string> argv = {TILLER_BINARY, "batch", "--threads", "1", "-q", "--max-batch", "1", "--model", dir.string(),
                                   "--input", in.string(), "--output", out.string()};
  std::vector<char*> c;
  for (auto& a : argv) c.push_back(a.data());
  c.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, c[0], &fa, nullptr, c.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&fa);
  for (int i = 0; i < 20000 && (!fs::exists(out) || fs::file_size(out) == 0); i++)
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  scribble(dir / "model.safetensors");
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) != 0);
  std::ifstream lf(log);
  const std::string text((std::istreambuf_iterator<char>(lf)), {});
  CHECK(text.find("noticed while running the batch") != std::string::npos);
  int lines = 0;
  std::ifstream of(out);
  for (std::string l; std::getline(of, l);) lines++;
  CHECK(lines < 64);
  fs::remove_all(dir);
}

TEST_CASE("mapped weights: a file cut short under a running generation ends it with the file named, not a bare bus error") {
  const fs::path dir = test::scratch_path("sigbus");
  fs::remove_all(dir);
  fs::create_directories(dir);
  {  // a model big enough (about 25 MB) that generating reads every page again and again
    json config = read_json_file(test::fixtures_dir() / "models" / "llama_gqa" / "config.json");
    config["hidden_size"] = 512;
    config["intermediate_size"] = 1536;
    config["num_hidden_layers"] = 6;
    config["head_dim"] = 64;
    config["vocab_size"] = 4096;
    config["max_position_embeddings"] = 4096;
    std::ofstream(dir / "config.json") << config.dump();
  }
  REQUIRE(test::run_tiller_cli("random-init --config " + (dir / "config.json").string() + " --out " + dir.string() +
                               " --dtype f32 --threads 1").status == 0);
  const std::string log = (dir / "log.txt").string();
  std::vector<std::string> argv = {TILLER_BINARY, "generate", "--threads", "1", "--device", "cpu", "--model", dir.string(),
                                   "--tokens", "1,2,3", "-n", "4000", "--ignore-eos", "--temperature", "0"};
  std::vector<char*> c;
  for (auto& a : argv) c.push_back(a.data());
  c.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, c[0], &fa, nullptr, c.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&fa);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // loaded and generating
  fs::resize_file(dir / "model.safetensors", 1024);
  int status = 0;
  for (int i = 0; i < 600 && waitpid(pid, &status, WNOHANG) == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (waitpid(pid, &status, WNOHANG) == 0) {  // never read past the cut: not this test's question
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL("the generation did not touch the truncated file within 30 s");
  }
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGBUS);
  std::ifstream lf(log);
  const std::string text((std::istreambuf_iterator<char>(lf)), {});
  CHECK(text.find("model.safetensors was cut short while tiller had it mapped") != std::string::npos);
  fs::remove_all(dir);
}
