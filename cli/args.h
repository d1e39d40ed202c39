// A small declarative command-line parser: each subcommand lists its flags once, and gets
// --help text, unknown-flag errors and typed values with messages that name the flag.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tiller::cli {

struct Flag {
  std::string name;        // "--model"
  std::string alias;       // "-n" or empty
  std::string value_name;  // "DIR"; empty for a switch; ending in "..." ("FILE...") takes one or more values
  std::string help;
  std::string default_text;  // shown in --help
};

struct Command {
  std::string name;     // "generate"
  std::string summary;  // one line
  std::string usage;    // "tiller generate --model DIR (--prompt TEXT | --tokens 1,2,3) [options]"
  std::vector<Flag> flags;
  std::string epilog;   // examples
  std::string positional = {};  // name of one positional argument ("PROFILE"); empty: none accepted
};

class Args {
 public:
  // Parses argv after the subcommand. Throws UsageError on unknown flags or missing values.
  Args(const Command& command, const std::vector<std::string>& argv);

  bool help() const { return help_; }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string str(const std::string& name, const std::string& fallback = "") const;
  std::string required(const std::string& name) const;
  int64_t integer(const std::string& name, int64_t fallback) const;
  double number(const std::string& name, double fallback) const;
  std::optional<double> optional_number(const std::string& name) const;
  // "1,2,3" -> ids
  std::vector<int32_t> int_list(const std::string& name) const;
  // Every value of a flag given several times, or of a "..." flag (empty when absent).
  std::vector<std::string> values(const std::string& name) const;
  // The positional argument (empty when absent).
  const std::string& positional() const { return positional_; }

 private:
  const Command& command_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> multi_;  // "..." flags
  std::string positional_;
  bool help_ = false;
};

struct UsageError {
  std::string message;
};

std::string help_text(const Command& command);

}  // namespace tiller::cli
