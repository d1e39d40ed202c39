// UTF-8 and Python str semantics (case mapping, whitespace, printability) for the interpreter.
#include "engine/chat/jinja_unicode.h"

#include <algorithm>
#include <cstdint>

#include "engine/chat/jinja_error.h"
#include "engine/chat/jinja_limits.h"
#include "engine/tokenizer/unicode.h"

namespace tiller::jinja {
namespace {

struct CodeRange {
  char32_t lo, hi;
};
struct CodeMap {
  char32_t from, to;
};
struct CodeMapMulti {
  char32_t from;
  char32_t to[3];  // zero-padded
};

#include "engine/chat/unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodeRange (&table)[N], char32_t cp) {
  auto it = std::upper_bound(std::begin(table), std::end(table), cp,
                             [](char32_t v, const CodeRange& r) { return v < r.lo; });
  if (it == std::begin(table)) return false;
  --it;
  return cp >= it->lo && cp <= it->hi;
}

template <size_t N1, size_t N2>
void map_char(const CodeMap (&single)[N1], const CodeMapMulti (&multi)[N2], char32_t cp, std::u32string& out) {
  auto it = std::lower_bound(std::begin(single), std::end(single), cp,
                             [](const CodeMap& m, char32_t v) { return m.from < v; });
  if (it != std::end(single) && it->from == cp) {
    out.push_back(it->to);
    return;
  }
  if constexpr (N2 > 0) {
    for (const auto& m : multi) {
      if (m.from == cp) {
        for (char32_t c : m.to)
          if (c) out.push_back(c);
        return;
      }
    }
  }
  out.push_back(cp);
}

void upper_char(char32_t cp, std::u32string& out) { map_char(kUpper_single, kUpper_multi, cp, out); }

void lower_char(char32_t cp, std::u32string& out) {
  if (cp < 0x80) {
    out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    return;
  }
  map_char(kLower_single, kLower_multi, cp, out);
}

void title_char(char32_t cp, std::u32string& out) {
  auto it = std::lower_bound(std::begin(kTitleDiff_single), std::end(kTitleDiff_single), cp,
                             [](const CodeMap& m, char32_t v) { return m.from < v; });
  if (it != std::end(kTitleDiff_single) && it->from == cp) {
    out.push_back(it->to);
    return;
  }
  for (const auto& m : kTitleDiff_multi) {
    if (m.from == cp) {
      for (char32_t c : m.to)
        if (c) out.push_back(c);
      return;
    }
  }
  upper_char(cp, out);
}

bool is_case_ignorable(char32_t cp) { return in_ranges(kCaseIgnorable, cp); }

// Python lowercases GREEK CAPITAL SIGMA to the final form at the end of a word.
char32_t lower_sigma(const std::u32string& s, size_t i) {
  size_t j = i;
  bool final_sigma = false;
  while (j > 0) {
    --j;
    if (!is_case_ignorable(s[j])) {
      final_sigma = is_py_cased(s[j]);
      break;
    }
  }
  if (final_sigma) {
    for (size_t k = i + 1; k < s.size(); ++k) {
      if (!is_case_ignorable(s[k])) {
        final_sigma = !is_py_cased(s[k]);
        break;
      }
    }
  }
  return final_sigma ? 0x3C2 : 0x3C3;
}

void lower_at(const std::u32string& s, size_t i, std::u32string& out) {
  if (s[i] == 0x3A3) {
    out.push_back(lower_sigma(s, i));
  } else {
    lower_char(s[i], out);
  }
}

}  // namespace

// The UTF-8 primitives are the tokenizer's (engine/tokenizer/unicode.h); strings here must be
// valid UTF-8, which also rules out overlong forms and surrogates.
std::u32string utf8_decode(std::string_view s) {
  const size_t valid = tiller::valid_utf8_prefix(s);
  if (valid < s.size())
    throw_runtime("invalid UTF-8 at byte " + std::to_string(valid) + " of a string", "pass valid UTF-8 text");
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out.push_back(char32_t(tiller::utf8_next(s, i)));
  return out;
}

void utf8_append(std::string& out, char32_t cp) { tiller::utf8_append(uint32_t(cp), out); }

std::string utf8_encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8_append(out, c);
  return out;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

size_t utf8_char_len(std::string_view s, size_t pos) {
  return std::min(tiller::utf8_length(static_cast<unsigned char>(s[pos])), s.size() - pos);
}

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

bool is_py_space(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
  return in_ranges(kSpace, cp);
}

size_t py_space_len(std::string_view s, size_t pos) {
  if (pos >= s.size()) return 0;
  unsigned char c = static_cast<unsigned char>(s[pos]);
  if (c < 0x80) return is_py_space(c) ? 1 : 0;
  size_t n = utf8_char_len(s, pos);
  std::u32string cp = utf8_decode(s.substr(pos, n));
  return (cp.size() == 1 && is_py_space(cp[0])) ? n : 0;
}

bool is_py_printable(char32_t cp) {
  if (cp < 0x80) return cp >= 0x20 && cp < 0x7F;
  return !in_ranges(kNotPrintable, cp);
}

bool is_py_linebreak(char32_t cp) { return in_ranges(kLineBreak, cp); }

bool is_py_cased(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z');
  return in_ranges(kCased, cp);
}

bool py_is_case(std::string_view s, bool upper) {
  bool any_cased = false;
  for (char32_t c : utf8_decode(s)) {
    if (!is_py_cased(c)) continue;
    any_cased = true;
    std::string one;
    utf8_append(one, c);
    if ((upper ? py_upper(one) : py_lower(one)) != one) return false;
  }
  return any_cased;
}

std::string py_upper(std::string_view s) {
  if (is_ascii(s)) {
    std::string out(s);
    for (char& c : out)
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    return out;
  }
  std::u32string out;
  for (char32_t c : utf8_decode(s)) upper_char(c, out);
  return utf8_encode(out);
}

std::string py_lower(std::string_view s) {
  if (is_ascii(s)) {
    std::string out(s);
    for (char& c : out)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    return out;
  }
  std::u32string in = utf8_decode(s), out;
  for (size_t i = 0; i < in.size(); ++i) lower_at(in, i, out);
  return utf8_encode(out);
}

std::string py_title(std::string_view s) {
  std::u32string in = utf8_decode(s), out;
  bool previous_cased = false;
  for (size_t i = 0; i < in.size(); ++i) {
    if (previous_cased) {
      lower_at(in, i, out);
    } else {
      title_char(in[i], out);
    }
    previous_cased = is_py_cased(in[i]);
  }
  return utf8_encode(out);
}

std::string py_capitalize(std::string_view s) {
  std::u32string in = utf8_decode(s), out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (i == 0) {
      title_char(in[i], out);
    } else {
      lower_at(in, i, out);
    }
  }
  return utf8_encode(out);
}

std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::u32string in = utf8_decode(s);
  std::u32string set;
  if (chars) set = utf8_decode(*chars);
  auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : is_py_space(c); };
  size_t b = 0, e = in.size();
  if (left)
    while (b < e && strip_it(in[b])) ++b;
  if (right)
    while (e > b && strip_it(in[e - 1])) --e;
  return utf8_encode(std::u32string_view(in).substr(b, e - b));
}

std::vector<std::string> py_split(std::string_view s, const std::string* sep, long maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (sep) {
    if (sep->empty()) throw_runtime("str.split(): empty separator");
    if (!from_right) {
      size_t pos = 0;
      while (maxsplit < 0 || static_cast<long>(parts.size()) < maxsplit) {
        size_t hit = s.find(*sep, pos);
        if (hit == std::string_view::npos) break;
        parts.emplace_back(s.substr(pos, hit - pos));
        pos = hit + sep->size();
      }
      parts.emplace_back(s.substr(pos));
    } else {
      size_t end = s.size();
      std::vector<std::string> rev;
      while (maxsplit < 0 || static_cast<long>(rev.size()) < maxsplit) {
        if (end < sep->size()) break;
        size_t hit = s.rfind(*sep, end - sep->size());
        if (hit == std::string_view::npos) break;
        rev.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
        end = hit;
      }
      rev.emplace_back(s.substr(0, end));
      parts.assign(rev.rbegin(), rev.rend());
    }
    return parts;
  }
  // Whitespace split: runs of whitespace separate, leading/trailing whitespace ignored.
  std::u32string in = utf8_decode(s);
  if (!from_right) {
    size_t i = 0;
    while (true) {
      while (i < in.size() && is_py_space(in[i])) ++i;
      if (i >= in.size()) break;
      if (maxsplit >= 0 && static_cast<long>(parts.size()) >= maxsplit) {
        parts.push_back(utf8_encode(std::u32string_view(in).substr(i)));  // the rest, as is
        break;
      }
      size_t j = i;
      while (j < in.size() && !is_py_space(in[j])) ++j;
      parts.push_back(utf8_encode(std::u32string_view(in).substr(i, j - i)));
      i = j;
    }
  } else {
    std::vector<std::string> rev;
    size_t e = in.size();
    while (true) {
      while (e > 0 && is_py_space(in[e - 1])) --e;
      if (e == 0) break;
      if (maxsplit >= 0 && static_cast<long>(rev.size()) >= maxsplit) {
        rev.push_back(utf8_encode(std::u32string_view(in).substr(0, e)));  // the rest, as is
        break;
      }
      size_t b = e;
      while (b > 0 && !is_py_space(in[b - 1])) --b;
      rev.push_back(utf8_encode(std::u32string_view(in).substr(b, e - b)));
      e = b;
    }
    parts.assign(rev.rbegin(), rev.rend());
  }
  return parts;
}

std::string py_replace(std::string_view s, std::string_view old_s, std::string_view new_s, long count) {
  std::string out;
  long done = 0;
  if (old_s.empty()) {  // Python inserts `new` before every character and at the end
    std::u32string cps = utf8_decode(s);
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += new_s;
        ++done;
        check_size(out.size(), "string");
      }
      if (i < cps.size()) utf8_append(out, cps[i]);
    }
    return out;
  }
  size_t pos = 0;
  while (count < 0 || done < count) {
    size_t hit = s.find(old_s, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out += new_s;
    check_size(out.size(), "string");
    pos = hit + old_s.size();
    ++done;
  }
  out.append(s.substr(pos));
  return out;
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends) {
  std::u32string in = utf8_decode(s);
  std::vector<std::string> lines;
  size_t i = 0, start = 0;
  while (i < in.size()) {
    if (is_py_linebreak(in[i])) {
      size_t eol = i;
      size_t next = i + 1;
      if (in[i] == '\r' && next < in.size() && in[next] == '\n') ++next;
      lines.push_back(utf8_encode(std::u32string_view(in).substr(start, (keepends ? next : eol) - start)));
      start = i = next;
    } else {
      ++i;
    }
  }
  if (start < in.size()) lines.push_back(utf8_encode(std::u32string_view(in).substr(start)));
  return lines;
}

}  // namespace tiller::jinja
