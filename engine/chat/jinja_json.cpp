// json.dumps() as Python's json module writes it (HF's tojson filter), for interpreter values.
#include <algorithm>
#include <cmath>

#include "engine/chat/jinja_limits.h"
#include "engine/chat/jinja_unicode.h"
#include "engine/chat/jinja_value.h"

namespace tiller::jinja {

namespace {

void dump_string(std::string_view s, bool ensure_ascii, std::string& out) {
  out.push_back('"');
  auto hex4 = [&](unsigned v) {
    static const char digits[] = "0123456789abcdef";
    const char buf[6] = {'\\', 'u', digits[(v >> 12) & 15], digits[(v >> 8) & 15], digits[(v >> 4) & 15], digits[v & 15]};
    out.append(buf, 6);
  };
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (c < 0x20 || (c == 0x7F && ensure_ascii)) {
            hex4(c);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    size_t n = utf8_char_len(s, i);
    if (!ensure_ascii) {
      out.append(s.substr(i, n));
    } else {
      char32_t cp = utf8_decode(s.substr(i, n))[0];
      if (cp >= 0x10000) {
        cp -= 0x10000;
        hex4(0xD800 + (cp >> 10));
        hex4(0xDC00 + (cp & 0x3FF));
      } else {
        hex4(cp);
      }
    }
    i += n;
  }
  out.push_back('"');
}

void dump_value(const Value& v, const JsonDumpOptions& o, int depth, std::string& out) {
  ValueWalk walk;
  auto newline = [&](int level) {
    check_size(out.size() + 1 + static_cast<size_t>(level) * o.indent.size(), "JSON string");
    out.push_back('\n');
    for (int i = 0; i < level; ++i) out += o.indent;
  };
  switch (v.kind()) {
    case Kind::None:
      out += "null";
      return;
    case Kind::Bool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Kind::Int:
      out += std::to_string(v.as_int());
      return;
    case Kind::Float: {
      double d = v.as_float();
      if (std::isnan(d))
        out += "NaN";
      else if (std::isinf(d))
        out += d > 0 ? "Infinity" : "-Infinity";
      else
        out += float_repr(d);
      return;
    }
    case Kind::String:
      dump_string(v.str(), o.ensure_ascii, out);
      return;
    case Kind::List: {
      SeqKind k = v.seq_kind();
      if (k != SeqKind::List && k != SeqKind::Tuple)
        throw_runtime("Object of type " + type_name(v) + " is not JSON serializable", "pass it through |list first");
      const auto& items = v.items();
      if (items.empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_separator;
        if (o.has_indent) newline(depth + 1);
        dump_value(items[i], o, depth + 1, out);
        check_size(out.size(), "JSON string");
      }
      if (o.has_indent) newline(depth);
      out.push_back(']');
      return;
    }
    case Kind::Dict: {
      const auto& entries = v.dict().entries;
      if (entries.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> order;
      for (const auto& e : entries) order.push_back(&e);
      if (o.sort_keys)
        std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out.push_back('{');
      for (size_t i = 0; i < order.size(); ++i) {
        if (i) out += o.item_separator;
        if (o.has_indent) newline(depth + 1);
        dump_string(order[i]->first, o.ensure_ascii, out);
        out += o.key_separator;
        dump_value(order[i]->second, o, depth + 1, out);
        check_size(out.size(), "JSON string");
      }
      if (o.has_indent) newline(depth);
      out.push_back('}');
      return;
    }
    case Kind::Undefined:
      if (!v.undefined_hint().empty()) fail_undefined(v);
      [[fallthrough]];
    default:
      throw_runtime("Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace

std::string json_dumps(const Value& v, const JsonDumpOptions& options) {
  std::string out;
  dump_value(v, options, 0, out);
  return out;
}

}  // namespace tiller::jinja
