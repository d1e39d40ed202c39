// Methods of Python values as templates call them (str.strip, dict.get, loop.cycle, ...), and
// Python's string formatting (str.format and the % operator).
#include <algorithm>
#include <cstdio>
#include <set>

#include "engine/chat/jinja_interp.h"
#include "engine/chat/jinja_unicode.h"

namespace tiller::jinja {
namespace {

[[noreturn]] void unsupported_method(const Value& obj, const std::string& name, const std::string& why = {}) {
  throw_unsupported(type_name(obj) + "." + name + "()", why);
}

const std::string* opt_str(const ArgReader& r, size_t i, const char* what) {
  const Value* v = r.get(i);
  if (!v || v->is_none()) return nullptr;
  if (!v->is_string()) throw_runtime(std::string(what) + " must be str or None, not " + type_name(*v));
  return &v->str();
}

const std::string& req_str(const ArgReader& r, size_t i, const char* what) {
  const Value* v = r.get(i);
  if (!v || !v->is_string())
    throw_runtime(std::string(what) + " must be str, not " + (v ? type_name(*v) : std::string("missing")));
  return v->str();
}

// Markup methods return Markup; replace/join/format/padding escape the text they insert.
Value text_result(const Value& self, std::string s) { return Value::string(std::move(s), self.is_markup()); }
std::string escaped_arg(const Value& self, const Value& arg) {
  return self.is_markup() ? html_escape(arg).str() : py_str(arg);
}

bool all_chars(const std::string& s, bool (*pred)(char)) {
  if (s.empty()) return false;
  if (!is_ascii(s)) throw_unsupported("str.is*() on non-ASCII text", "");
  return std::all_of(s.begin(), s.end(), pred);
}

std::string pad(const std::string& s, int64_t width, const std::string& fill, char align) {
  int64_t len = static_cast<int64_t>(utf8_length(s));
  if (width <= len) return s;
  int64_t total = width - len;
  int64_t left = align == '<' ? 0 : align == '>' ? total : total / 2 + (total & width & 1);
  int64_t right = total - left;
  check_size(static_cast<size_t>(total), fill.size(), "padded string");
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = 0; i < right; ++i) out += fill;
  return out;
}

int64_t find_cp(const std::string& hay, const std::string& needle, bool reverse) {
  size_t at = reverse ? hay.rfind(needle) : hay.find(needle);
  if (at == std::string::npos) return -1;
  return static_cast<int64_t>(utf8_length(std::string_view(hay).substr(0, at)));
}

Value str_method(Interpreter& in, const Value& self, const std::string& name, CallArgs& args) {
  const std::string& s = self.str();
  if (name == "startswith" || name == "endswith") {
    ArgReader r("str." + name, args, {"prefix", "start", "end"}, 1);
    if (r.has(1) || r.has(2)) unsupported_method(self, name, "start/end arguments");
    const Value& p = *r.get(0);
    std::vector<std::string> cands;
    if (p.is_string()) {
      cands.push_back(p.str());
    } else if (p.is_list() && p.seq_kind() == SeqKind::Tuple) {
      for (const Value& v : p.items()) {
        if (!v.is_string()) throw_runtime("tuple for " + name + " must only contain str");
        cands.push_back(v.str());
      }
    } else {
      throw_runtime(name + " first arg must be str or a tuple of str, not " + type_name(p));
    }
    for (const auto& c : cands) {
      bool hit = name == "startswith" ? s.compare(0, c.size(), c) == 0 && s.size() >= c.size()
                                      : s.size() >= c.size() && s.compare(s.size() - c.size(), c.size(), c) == 0;
      if (hit) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    ArgReader r("str." + name, args, {"chars"});
    const std::string* chars = opt_str(r, 0, "strip arg");
    return text_result(self, py_strip(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    ArgReader r("str." + name, args, {"sep", "maxsplit"});
    const std::string* sep = opt_str(r, 0, "separator");
    std::vector<Value> out;
    for (auto& part : py_split(s, sep, static_cast<long>(r.int_or(1, -1)), name == "rsplit"))
      out.push_back(text_result(self, std::move(part)));
    return Value::list(std::move(out));
  }
  if (name == "splitlines") {
    ArgReader r("str.splitlines", args, {"keepends"});
    std::vector<Value> out;
    for (auto& line : py_splitlines(s, r.bool_or(0, false))) out.push_back(text_result(self, std::move(line)));
    return Value::list(std::move(out));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" || name == "casefold") {
    ArgReader r("str." + name, args, {});
    if (name == "upper") return text_result(self, py_upper(s));
    if (name == "lower") return text_result(self, py_lower(s));
    if (name == "title") return text_result(self, py_title(s));
    if (name == "capitalize") return text_result(self, py_capitalize(s));
    if (!is_ascii(s)) unsupported_method(self, name, "casefold of non-ASCII text");
    return text_result(self, py_lower(s));
  }
  if (name == "replace") {
    ArgReader r("str.replace", args, {"old", "new", "count"}, 2);
    const std::string& old_s = req_str(r, 0, "replace() argument 1");
    req_str(r, 1, "replace() argument 2");
    std::string new_s = escaped_arg(self, *r.get(1));
    return text_result(self, py_replace(s, old_s, new_s, static_cast<long>(r.int_or(2, -1))));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    ArgReader r("str." + name, args, {"sub", "start", "end"}, 1);
    if (r.has(1) || r.has(2)) unsupported_method(self, name, "start/end arguments");
    int64_t at = find_cp(s, req_str(r, 0, "substring"), name[0] == 'r');
    if (at < 0 && (name == "index" || name == "rindex")) throw_runtime("substring not found");
    return Value::integer(at);
  }
  if (name == "count") {
    ArgReader r("str.count", args, {"sub", "start", "end"}, 1);
    if (r.has(1) || r.has(2)) unsupported_method(self, name, "start/end arguments");
    const std::string& sub = req_str(r, 0, "substring");
    if (sub.empty()) return Value::integer(static_cast<int64_t>(utf8_length(s)) + 1);
    int64_t n = 0;
    for (size_t pos = s.find(sub); pos != std::string::npos; pos = s.find(sub, pos + sub.size())) ++n;
    return Value::integer(n);
  }
  if (name == "join") {
    ArgReader r("str.join", args, {"iterable"}, 1);
    std::string out;
    bool first = true;
    for (const Value& v : iterate(*r.get(0))) {
      if (!v.is_string()) throw_runtime("sequence item: expected str instance, " + type_name(v) + " found");
      if (!first) out += s;
      out += self.is_markup() ? html_escape(v).str() : v.str();
      check_size(out.size(), "string");
      first = false;
    }
    return text_result(self, std::move(out));
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    ArgReader r("str." + name, args, {"width", "fillchar"}, 1);
    std::string fill = r.has(1) ? escaped_arg(self, *r.get(1)) : " ";
    if (utf8_length(fill) != 1) throw_runtime("The fill character must be exactly one character long");
    char align = name == "center" ? '^' : name == "ljust" ? '<' : '>';
    return text_result(self, pad(s, r.int_or(0, 0), fill, align));
  }
  if (name == "zfill") {
    ArgReader r("str.zfill", args, {"width"}, 1);
    int64_t width = r.int_or(0, 0);
    int64_t len = static_cast<int64_t>(utf8_length(s));
    if (width <= len) return self;
    check_size(static_cast<size_t>(width), "padded string");
    std::string zeros(static_cast<size_t>(width - len), '0');
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) return text_result(self, s.substr(0, 1) + zeros + s.substr(1));
    return text_result(self, zeros + s);
  }
  if (name == "partition" || name == "rpartition") {
    ArgReader r("str." + name, args, {"sep"}, 1);
    const std::string& sep = req_str(r, 0, "separator");
    if (sep.empty()) throw_runtime("empty separator");
    size_t at = name == "partition" ? s.find(sep) : s.rfind(sep);
    std::vector<Value> parts;
    if (at == std::string::npos) {
      parts = name == "partition"
                  ? std::vector<Value>{text_result(self, s), text_result(self, ""), text_result(self, "")}
                  : std::vector<Value>{text_result(self, ""), text_result(self, ""), text_result(self, s)};
    } else {
      parts = {text_result(self, s.substr(0, at)), text_result(self, sep), text_result(self, s.substr(at + sep.size()))};
    }
    return Value::list(std::move(parts), SeqKind::Tuple);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    ArgReader r("str." + name, args, {"affix"}, 1);
    const std::string& a = req_str(r, 0, name.c_str());
    if (name == "removeprefix" && s.compare(0, a.size(), a) == 0 && s.size() >= a.size())
      return text_result(self, s.substr(a.size()));
    if (name == "removesuffix" && !a.empty() && s.size() >= a.size() && s.compare(s.size() - a.size(), a.size(), a) == 0)
      return text_result(self, s.substr(0, s.size() - a.size()));
    return self;
  }
  if (name == "format") {
    std::string out;
    size_t auto_index = 0;
    bool used_auto = false, used_manual = false;
    for (size_t i = 0; i < s.size(); ++i) {
      char c = s[i];
      if (c == '{' && i + 1 < s.size() && s[i + 1] == '{') {
        out.push_back('{');
        ++i;
      } else if (c == '}' && i + 1 < s.size() && s[i + 1] == '}') {
        out.push_back('}');
        ++i;
      } else if (c == '}') {
        throw_runtime("Single '}' encountered in format string");
      } else if (c == '{') {
        size_t end = s.find('}', i);
        if (end == std::string::npos) throw_runtime("Single '{' encountered in format string");
        std::string field = s.substr(i + 1, end - i - 1);
        char conv = 0;
        if (field.find(':') != std::string::npos) unsupported_method(self, name, "format specs");
        if (size_t bang = field.find('!'); bang != std::string::npos) {
          if (bang + 2 != field.size()) throw_runtime("invalid conversion in format string");
          conv = field[bang + 1];
          field.resize(bang);
        }
        const Value* v = nullptr;
        if (field.empty()) {
          used_auto = true;
          if (auto_index >= args.args.size()) throw_runtime("Replacement index " + std::to_string(auto_index) + " out of range");
          v = &args.args[auto_index++];
        } else if (std::all_of(field.begin(), field.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
          used_manual = true;
          size_t k = field.size() > 9 ? SIZE_MAX : std::stoul(field);
          if (k >= args.args.size()) throw_runtime("Replacement index " + field + " out of range");
          v = &args.args[k];
        } else {
          if (field.find_first_of(".[") != std::string::npos) unsupported_method(self, name, "attribute or index in a field");
          for (const auto& [k, val] : args.kwargs)
            if (k == field) v = &val;
          if (!v) throw_runtime("KeyError: '" + field + "'");
        }
        if (used_auto && used_manual) throw_runtime("cannot switch between automatic and manual field numbering");
        std::string text = conv == 'r' ? py_repr(*v) : conv == 's' || conv == 0 ? py_str(*v) : "";
        if (conv != 0 && conv != 'r' && conv != 's') unsupported_method(self, name, "!a conversion");
        out += self.is_markup() && !v->is_markup() ? html_escape_text(text) : text;
        check_size(out.size(), "string");
        i = end;
      } else {
        out.push_back(c);
      }
    }
    return text_result(self, std::move(out));
  }
  if (name == "isalpha" || name == "isdigit" || name == "isalnum" || name == "isdecimal" || name == "isnumeric" ||
      name == "isspace" || name == "islower" || name == "isupper" || name == "isascii") {
    ArgReader r("str." + name, args, {});
    if (name == "isascii") return Value::boolean(is_ascii(s));
    if (name == "isspace") {
      std::u32string cps = utf8_decode(s);
      return Value::boolean(!cps.empty() && std::all_of(cps.begin(), cps.end(), is_py_space));
    }
    if (name == "islower" || name == "isupper") return Value::boolean(py_is_case(s, name == "isupper"));
    if (name == "isalpha") return Value::boolean(all_chars(s, [](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }));
    if (name == "isalnum") return Value::boolean(all_chars(s, [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }));
    return Value::boolean(all_chars(s, [](char c) { return c >= '0' && c <= '9'; }));
  }
  unsupported_method(self, name);
}

Value dict_method(const Value& self, const std::string& name, CallArgs& args) {
  const DictData& d = self.dict();
  if (name == "get") {
    ArgReader r("dict.get", args, {"key", "default"}, 1);
    const Value& key = *r.get(0);
    if (key.is_string())
      if (const Value* v = d.find(key.str())) return *v;
    return r.value_or(1, Value::none());
  }
  if (name == "items" || name == "keys" || name == "values") {
    ArgReader r("dict." + name, args, {});
    std::vector<Value> out;
    for (const auto& [k, v] : d.entries) {
      if (name == "items")
        out.push_back(Value::list({Value::string(k), v}, SeqKind::Tuple));
      else if (name == "keys")
        out.push_back(Value::string(k));
      else
        out.push_back(v);
    }
    return Value::list(std::move(out), name == "items" ? SeqKind::DictItems
                                                       : name == "keys" ? SeqKind::DictKeys : SeqKind::DictValues);
  }
  if (name == "copy") return self;  // values are immutable in the sandbox
  unsupported_method(self, name);
}

Value list_method(const Value& self, const std::string& name, CallArgs& args) {
  if (name == "count" || name == "index") {
    ArgReader r(type_name(self) + "." + name, args, {"value"}, 1);
    int64_t n = 0, i = 0;
    for (const Value& v : self.items()) {
      if (py_equal(v, *r.get(0))) {
        if (name == "index") return Value::integer(i);
        ++n;
      }
      ++i;
    }
    if (name == "index") throw_runtime("value is not in list");
    return Value::integer(n);
  }
  if (name == "copy") return Value::list(self.items());
  unsupported_method(self, name);
}

Value loop_method(Interpreter&, const Value& self, const std::string& name, CallArgs& args) {
  if (name == "cycle") {
    if (args.args.empty()) throw_runtime("no items for cycling given");
    int64_t i = self.object().attrs.find("index0")->as_int();
    return args.args[static_cast<size_t>(i) % args.args.size()];
  }
  unsupported_method(self, name);
}

const std::set<std::string>& str_methods() {
  static const std::set<std::string> names = {
      "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format",
      "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower",
      "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip",
      "maketrans", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust",
      "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title",
      "translate", "upper", "zfill"};
  return names;
}

Value bind(const Value& self, const std::string& name) {
  return Value::function(type_name(self) + "." + name, [self, name](Interpreter& in, CallArgs& args) -> Value {
    switch (self.kind()) {
      case Kind::String:
        return str_method(in, self, name, args);
      case Kind::Dict:
        return dict_method(self, name, args);
      case Kind::List:
        return list_method(self, name, args);
      default:
        return loop_method(in, self, name, args);
    }
  });
}

Value unsafe(const Value& self, const std::string& name) {
  return Value::undefined("access to attribute '" + name + "' of '" + type_name(self) +
                          "' object is unsafe (the sandbox forbids changing values)");
}

}  // namespace

Value get_method(const Value& obj, const std::string& name, bool& found) {
  found = false;
  switch (obj.kind()) {
    case Kind::String:
      found = str_methods().count(name) > 0;
      return found ? bind(obj, name) : Value();
    case Kind::Dict: {
      static const std::set<std::string> safe = {"get", "items", "keys", "values", "copy"};
      static const std::set<std::string> mutating = {"clear", "pop", "popitem", "setdefault", "update", "fromkeys"};
      if (safe.count(name)) {
        found = true;
        return bind(obj, name);
      }
      if (mutating.count(name)) {
        found = true;
        return unsafe(obj, name);
      }
      return {};
    }
    case Kind::List: {
      SeqKind k = obj.seq_kind();
      if (k != SeqKind::List && k != SeqKind::Tuple && k != SeqKind::Range) return {};
      if (name == "count" || name == "index" || (name == "copy" && k == SeqKind::List)) {
        found = true;
        return bind(obj, name);
      }
      static const std::set<std::string> mutating = {"append", "clear", "extend", "insert", "pop", "remove",
                                                     "reverse", "sort"};
      if (k == SeqKind::List && mutating.count(name)) {
        found = true;
        return unsafe(obj, name);
      }
      return {};
    }
    case Kind::Object:
      if (obj.object().type == ObjectData::Type::Loop && (name == "cycle" || name == "changed")) {
        found = true;
        return bind(obj, name);
      }
      return {};
    default:
      return {};
  }
}

// --- % formatting ---------------------------------------------------------------------------------

namespace {

// A width or precision of a % format, bounded by the render's size limit.
size_t format_count(const std::string& digits) {
  if (digits.empty()) return 0;
  if (digits.size() > 9) {
    check_size(SIZE_MAX, "formatted field");
    throw_runtime("format width or precision " + digits + " is too large");
  }
  const size_t n = std::stoul(digits);
  check_size(n, "formatted field");
  return n;
}

// snprintf into a string of the size it needs.
template <class T>
std::string printf_text(const std::string& spec, T value) {
  const int n = std::snprintf(nullptr, 0, spec.c_str(), value);
  if (n < 0) throw_runtime("cannot format with '" + spec + "'");
  std::string out(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(out.data(), out.size(), spec.c_str(), value);
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace

Value percent_format(const Value& fmt, const Value& args) {
  const std::string& f = fmt.str();
  std::vector<Value> positional;
  const DictData* mapping = nullptr;
  // Python treats any subscriptable non-tuple, non-str argument as a possible mapping: then
  // unused arguments are not an error.
  bool mapping_like = false;
  if (args.is_list() && args.seq_kind() == SeqKind::Tuple) {
    positional = args.items();
  } else if (args.is_dict()) {
    mapping = &args.dict();
    mapping_like = true;
  } else {
    positional.push_back(args);
    mapping_like = (args.is_list() && args.seq_kind() != SeqKind::Iterator) || args.is_undefined();
  }
  size_t next = 0;
  std::string out;
  // Markup % args escapes every argument's text (markupsafe's _MarkupEscapeHelper).
  auto arg_text = [&](const Value& v, const std::string& text) {
    return fmt.is_markup() && !v.is_markup() ? html_escape_text(text) : text;
  };
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%') {
      out.push_back(f[i]);
      continue;
    }
    if (++i >= f.size()) throw_runtime("incomplete format");
    const Value* v = nullptr;
    if (f[i] == '(') {
      size_t close = f.find(')', i);
      if (close == std::string::npos || !mapping) throw_runtime("format requires a mapping");
      v = mapping->find(f.substr(i + 1, close - i - 1));
      if (!v) throw_runtime("KeyError: '" + f.substr(i + 1, close - i - 1) + "'");
      i = close + 1;
    }
    std::string flags;
    while (i < f.size() && std::string("-+ #0").find(f[i]) != std::string::npos) flags.push_back(f[i++]);
    std::string width, precision;
    while (i < f.size() && std::isdigit(static_cast<unsigned char>(f[i]))) width.push_back(f[i++]);
    if (i < f.size() && f[i] == '.') {
      precision = ".";
      ++i;
      while (i < f.size() && std::isdigit(static_cast<unsigned char>(f[i]))) precision.push_back(f[i++]);
    }
    if (i >= f.size()) throw_runtime("incomplete format");
    char type = f[i];
    if (type == '%' && flags.empty() && width.empty() && precision.empty() && !v) {
      out.push_back('%');
      continue;
    }
    if (!v) {
      if (mapping) throw_runtime("format requires a mapping");
      if (next >= positional.size()) throw_runtime("not enough arguments for format string");
      v = &positional[next++];
    }
    if (v->is_undefined() && type != 's') fail_undefined(*v);
    const size_t w = format_count(width);
    const size_t prec = precision.empty() ? 0 : format_count(precision.substr(1));
    std::string spec = "%" + flags + width + precision;
    if (type == 's' || type == 'r') {
      std::string text = type == 's' ? py_str(*v) : py_repr(*v);
      if (precision.size() > 1) {
        std::u32string cps = utf8_decode(text);
        if (cps.size() > prec) text = utf8_encode(cps.substr(0, prec));
      }
      text = arg_text(*v, text);
      size_t len = utf8_length(text);
      if (len < w) text = flags.find('-') != std::string::npos ? text + std::string(w - len, ' ') : std::string(w - len, ' ') + text;
      out += text;
    } else if (type == 'd' || type == 'i' || type == 'x' || type == 'X' || type == 'o') {
      if (!v->is_number()) throw_runtime("%" + std::string(1, type) + " format: a real number is required, not " + type_name(*v));
      long long n = v->kind() == Kind::Float ? static_cast<long long>(v->as_float()) : v->as_int();
      if (n < 0 && type != 'd' && type != 'i') throw_unsupported("%" + std::string(1, type) + " of a negative number", "");
      out += printf_text(spec + "ll" + (type == 'i' ? 'd' : type), n);
    } else if (type == 'c') {
      std::string ch;
      if (v->is_string() && utf8_length(v->str()) == 1) {
        ch = v->str();
      } else if (v->is_integral() && v->as_int() >= 0 && v->as_int() <= 0x10FFFF) {
        utf8_append(ch, static_cast<char32_t>(v->as_int()));
      } else {
        throw_runtime("%c requires an int or a single character");
      }
      out += arg_text(*v, ch);
    } else if (std::string("eEfFgG").find(type) != std::string::npos) {
      if (!v->is_number()) throw_runtime("must be real number, not " + type_name(*v));
      out += printf_text(spec + type, v->as_float());
    } else {
      throw_unsupported(std::string("%") + type + " format", "");
    }
    check_size(out.size(), "string");
  }
  if (!mapping_like && next < positional.size()) throw_runtime("not all arguments converted during string formatting");
  return Value::string(std::move(out), fmt.is_markup());
}

}  // namespace tiller::jinja
