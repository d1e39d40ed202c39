// Command-line parsing with errors that name the flag and what it expects.
#include "cli/args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace tiller::cli {

Args::Args(const Command& command, const std::vector<std::string>& argv) : command_(command) {
  for (size_t i = 0; i < argv.size(); i++) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_ = true;
      continue;
    }
    std::optional<std::string> inline_value;
    if (arg.rfind("--", 0) == 0) {
      if (const auto eq = arg.find('='); eq != std::string::npos) {
        inline_value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
      }
    }
    if (arg.rfind("-", 0) != 0 && !command.positional.empty()) {
      if (!positional_.empty())
        throw UsageError{"'tiller " + command.name + "' takes one " + command.positional + ", found '" + positional_ +
                         "' and '" + arg + "'"};
      positional_ = arg;
      continue;
    }
    const Flag* flag = nullptr;
    for (const auto& f : command.flags) {
      if (f.name == arg || (!f.alias.empty() && f.alias == arg)) flag = &f;
    }
    if (!flag) {
      throw UsageError{"unknown option '" + arg + "' for 'tiller " + command.name + "' (see tiller " + command.name +
                       " --help)"};
    }
    if (flag->value_name.empty()) {
      if (inline_value) throw UsageError{flag->name + " takes no value"};
      values_[flag->name] = "1";
    } else if (inline_value) {
      values_[flag->name] = *inline_value;
      multi_[flag->name].push_back(*inline_value);
    } else if (flag->value_name.size() > 3 && flag->value_name.ends_with("...")) {
      if (i + 1 >= argv.size()) throw UsageError{flag->name + " needs a value (" + flag->value_name + ")"};
      values_[flag->name] = argv[i + 1];
      while (i + 1 < argv.size() && argv[i + 1].rfind("-", 0) != 0) multi_[flag->name].push_back(argv[++i]);
      if (multi_[flag->name].empty()) throw UsageError{flag->name + " needs a value (" + flag->value_name + ")"};
    } else {
      if (i + 1 >= argv.size()) throw UsageError{flag->name + " needs a value (" + flag->value_name + ")"};
      values_[flag->name] = argv[++i];
      multi_[flag->name].push_back(argv[i]);  // a flag given again adds a value (--profile a=x --profile b=y)
    }
  }
}

std::vector<std::string> Args::values(const std::string& name) const {
  auto it = multi_.find(name);
  return it == multi_.end() ? std::vector<std::string>{} : it->second;
}

std::string Args::str(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::string Args::required(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw UsageError{"'tiller " + command_.name + "' needs " + name + " (see --help)"};
  return it->second;
}

int64_t Args::integer(const std::string& name, int64_t fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(it->second.c_str(), &end, 10);
  if (errno != 0 || end == it->second.c_str() || *end != '\0')
    throw UsageError{name + " expects an integer, found '" + it->second + "'"};
  return v;
}

std::optional<double> Args::optional_number(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (errno != 0 || end == it->second.c_str() || *end != '\0' || !std::isfinite(v))
    throw UsageError{name + " expects a number, found '" + it->second + "'"};
  return v;
}

double Args::number(const std::string& name, double fallback) const {
  return optional_number(name).value_or(fallback);
}

std::vector<int32_t> Args::int_list(const std::string& name) const {
  std::vector<int32_t> out;
  const std::string s = required(name);
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || errno != 0 || *end != '\0' || v < 0 || v > INT32_MAX)
      throw UsageError{name + " expects comma-separated token ids like 1,2,3; found '" + item + "' in '" + s + "'"};
    out.push_back(int32_t(v));
  }
  if (out.empty()) throw UsageError{name + " is empty"};
  return out;
}

std::string help_text(const Command& c) {
  std::ostringstream os;
  os << "tiller " << c.name << ": " << c.summary << "\n\nUsage: " << c.usage << "\n\nOptions:\n";
  for (const auto& f : c.flags) {
    std::string left = "  " + (f.alias.empty() ? "" : f.alias + ", ") + f.name;
    if (!f.value_name.empty()) left += " " + f.value_name;
    os << left;
    if (left.size() < 30) os << std::string(30 - left.size(), ' ');
    else os << "\n" << std::string(30, ' ');
    os << f.help;
    if (!f.default_text.empty()) os << " (default: " << f.default_text << ")";
    os << "\n";
  }
  os << "  -h, --help                  show this help\n";
  if (!c.epilog.empty()) os << "\n" << c.epilog << "\n";
  return os.str();
}

}  // namespace tiller::cli
