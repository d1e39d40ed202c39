// Jinja lexer, following jinja2.lexer.Lexer.tokeniter rule by rule so that whitespace handling
// (trim_blocks, lstrip_blocks, "-"/"+" markers) matches byte for byte.
#include "engine/chat/jinja_lexer.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "engine/chat/jinja_error.h"
#include "engine/chat/jinja_unicode.h"

namespace tiller::jinja {
namespace {

// jinja2 normalizes \r\n and \r to \n and drops one trailing newline (keep_trailing_newline=False).
std::string normalize_source(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
    } else {
      out.push_back(in[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    while (pos_ < src_.size()) lex_root();
    push(Tok::Eof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  std::string src_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  std::vector<char> balance_;

  // Tokens arrive in order, so the column is counted on from the previous token's when both sit
  // on one line (a template written on one long line would otherwise cost quadratic time).
  mutable size_t last_line_ = SIZE_MAX, last_offset_ = 0, last_col_ = 0;

  void position(size_t offset, int& line, int& col) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    size_t line_index = static_cast<size_t>(it - line_starts_.begin()) - 1;
    line = static_cast<int>(line_index) + 1;
    size_t from = line_starts_[line_index], counted = 0;
    if (line_index == last_line_ && offset >= last_offset_) {
      from = last_offset_;
      counted = last_col_;
    }
    counted += utf8_length(std::string_view(src_).substr(from, offset - from));
    last_line_ = line_index;
    last_offset_ = offset;
    last_col_ = counted;
    col = static_cast<int>(counted) + 1;
  }

  [[noreturn]] void error_at(size_t offset, const std::string& msg) const {
    int line, col;
    position(offset, line, col);
    throw JinjaError(JinjaError::Kind::Syntax, msg, {}, line, col);
  }

  Token& push(Tok type, std::string value, size_t offset) {
    Token t;
    t.type = type;
    t.value = std::move(value);
    position(offset, t.line, t.col);
    tokens_.push_back(std::move(t));
    return tokens_.back();
  }

  bool starts_with(size_t at, std::string_view s) const {
    return src_.compare(at, s.size(), s) == 0 && at + s.size() <= src_.size();
  }

  size_t skip_space(size_t at) const {
    while (at < src_.size()) {
      size_t n = py_space_len(src_, at);
      if (!n) break;
      at += n;
    }
    return at;
  }

  // The text before a tag, with "-" stripping or lstrip_blocks applied (OptionalLStrip).
  void emit_data_before_tag(size_t text_begin, size_t tag_at, char sign, bool is_variable) {
    std::string text = src_.substr(text_begin, tag_at - text_begin);
    if (sign == '-') {
      text = py_strip(text, nullptr, false, true);
    } else if (sign != '+' && !is_variable) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && l_pos < text.size()) {
        size_t at = l_pos;
        while (at < text.size()) {
          size_t n = py_space_len(text, at);
          if (!n) break;
          at += n;
        }
        if (at == text.size()) text.resize(l_pos);
      }
    }
    if (!text.empty()) push(Tok::Data, std::move(text), text_begin);
  }

  // Matches {%(-|+|)\s*raw\s*(-%}\s*|%}) at `at`; returns the end offset or npos.
  size_t match_raw_begin(size_t at, char& sign) const {
    size_t p = at + 2;
    sign = 0;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
    p = skip_space(p);
    if (!starts_with(p, "raw")) return std::string::npos;
    p = skip_space(p + 3);
    if (starts_with(p, "-%}")) return skip_space(p + 3);
    if (starts_with(p, "%}")) return p + 2;
    return std::string::npos;
  }

  void lex_root() {
    size_t tag = src_.find('{', pos_);
    while (tag != std::string::npos && tag + 1 < src_.size() && src_[tag + 1] != '{' && src_[tag + 1] != '%' &&
           src_[tag + 1] != '#')
      tag = src_.find('{', tag + 1);
    if (tag == std::string::npos || tag + 1 >= src_.size()) {  // plain data to the end
      push(Tok::Data, src_.substr(pos_), pos_);
      pos_ = src_.size();
      return;
    }
    char kind = src_[tag + 1];
    if (kind == '%') {
      char raw_sign;
      size_t raw_end = match_raw_begin(tag, raw_sign);
      if (raw_end != std::string::npos) {
        emit_data_before_tag(pos_, tag, raw_sign, false);
        line_starting_ = src_[raw_end - 1] == '\n';
        lex_raw(raw_end);
        return;
      }
    }
    char sign = 0;
    size_t body = tag + 2;
    if (body < src_.size() && (src_[body] == '-' || src_[body] == '+')) sign = src_[body++];
    emit_data_before_tag(pos_, tag, sign, kind == '{');
    if (kind == '#') {
      lex_comment(tag, body);
    } else {
      push(kind == '{' ? Tok::VarBegin : Tok::BlockBegin, src_.substr(tag, body - tag), tag);
      lex_tag(body, kind == '{');
    }
  }

  void lex_comment(size_t tag, size_t body) {
    size_t end = src_.find("#}", body);
    if (end == std::string::npos) error_at(tag, "missing end of comment tag '#}'");
    size_t after;
    if (end > body && src_[end - 1] == '-') {
      after = skip_space(end + 2);
    } else if (end > body && src_[end - 1] == '+') {
      after = end + 2;
    } else {
      after = end + 2;
      if (after < src_.size() && src_[after] == '\n') ++after;  // trim_blocks
    }
    line_starting_ = src_[after - 1] == '\n';
    pos_ = after;
  }

  void lex_raw(size_t body) {
    size_t search = body;
    while (true) {
      size_t tag = src_.find("{%", search);
      if (tag == std::string::npos) error_at(body, "missing end of raw directive '{% endraw %}'");
      size_t p = tag + 2;
      char sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      p = skip_space(p);
      if (!starts_with(p, "endraw")) {
        search = tag + 2;
        continue;
      }
      p = skip_space(p + 6);
      size_t after;
      if (starts_with(p, "+%}")) {
        after = p + 3;
      } else if (starts_with(p, "-%}")) {
        after = skip_space(p + 3);
      } else if (starts_with(p, "%}")) {
        after = p + 2;
        if (after < src_.size() && src_[after] == '\n') ++after;
      } else {
        search = tag + 2;
        continue;
      }
      emit_data_before_tag(body, tag, sign, false);
      line_starting_ = src_[after - 1] == '\n';
      pos_ = after;
      return;
    }
  }

  void lex_tag(size_t p, bool variable) {
    while (true) {
      if (p >= src_.size()) error_at(p, variable ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'");
      if (balance_.empty()) {
        size_t end = std::string::npos;
        if (variable) {
          if (starts_with(p, "-}}")) {
            end = skip_space(p + 3);
          } else if (starts_with(p, "}}")) {
            end = p + 2;
          }
        } else {
          if (starts_with(p, "+%}")) {
            end = p + 3;
          } else if (starts_with(p, "-%}")) {
            end = skip_space(p + 3);
          } else if (starts_with(p, "%}")) {
            end = p + 2;
            if (end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
          }
        }
        if (end != std::string::npos) {
          push(variable ? Tok::VarEnd : Tok::BlockEnd, "", p);
          line_starting_ = src_[end - 1] == '\n';
          pos_ = end;
          return;
        }
      }
      size_t ws = skip_space(p);
      if (ws != p) {
        p = ws;
        continue;
      }
      char c = src_[p];
      if (is_digit(c)) {
        p = lex_number(p);
      } else if (is_name_start(c)) {
        size_t e = p;
        while (e < src_.size() && is_name_char(src_[e])) ++e;
        push(Tok::Name, src_.substr(p, e - p), p);
        p = e;
      } else if (c == '\'' || c == '"') {
        p = lex_string(p);
      } else {
        p = lex_operator(p);
      }
    }
  }

  // Digits with optional single underscores between them: (\d+_)*\d+
  size_t match_digits(size_t p) const {
    if (p >= src_.size() || !is_digit(src_[p])) return std::string::npos;
    while (true) {
      while (p < src_.size() && is_digit(src_[p])) ++p;
      if (p + 1 < src_.size() && src_[p] == '_' && is_digit(src_[p + 1])) {
        ++p;
        continue;
      }
      return p;
    }
  }

  size_t lex_number(size_t p) {
    auto strip_underscores = [](std::string s) {
      s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
      return s;
    };
    // float: (?<!\.)digits((\.digits)?e[+-]?digits|\.digits)
    if (p == 0 || src_[p - 1] != '.') {
      size_t int_end = match_digits(p);
      size_t q = int_end;
      size_t frac_end = std::string::npos;
      if (q < src_.size() && src_[q] == '.') frac_end = match_digits(q + 1);
      size_t after_frac = frac_end != std::string::npos ? frac_end : int_end;
      size_t exp_end = std::string::npos;
      if (after_frac < src_.size() && (src_[after_frac] == 'e' || src_[after_frac] == 'E')) {
        size_t e = after_frac + 1;
        if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
        exp_end = match_digits(e);
      }
      size_t end = exp_end != std::string::npos ? exp_end : frac_end;
      if (end != std::string::npos) {
        Token& t = push(Tok::Float, src_.substr(p, end - p), p);
        t.float_value = std::strtod(strip_underscores(t.value).c_str(), nullptr);
        return end;
      }
    }
    // integer: 0b.., 0o.., 0x.., [1-9](_?\d)*, 0(_?0)*
    size_t end = p;
    int base = 10;
    std::string digits;
    char c1 = p + 1 < src_.size() ? static_cast<char>(src_[p + 1] | 0x20) : 0;
    if (src_[p] == '0' && (c1 == 'b' || c1 == 'o' || c1 == 'x')) {
      base = c1 == 'b' ? 2 : c1 == 'o' ? 8 : 16;
      size_t q = p + 2;
      while (true) {
        size_t r = q;
        if (r < src_.size() && src_[r] == '_') ++r;
        int v = r < src_.size() ? hex_value(src_[r]) : -1;
        if (v < 0 || v >= base) break;
        digits.push_back(src_[r]);
        q = r + 1;
      }
      if (digits.empty()) {
        end = p + 1;  // just "0"; the letter becomes a name, as in jinja2
        digits.assign(1, '0');
        base = 10;
      } else {
        end = q;
      }
    } else if (src_[p] == '0') {
      size_t q = p + 1;
      while (true) {
        size_t r = q;
        if (r < src_.size() && src_[r] == '_') ++r;
        if (r < src_.size() && src_[r] == '0') {
          q = r + 1;
        } else {
          break;
        }
      }
      end = q;
      digits = "0";
    } else {
      size_t q = p + 1;
      digits.push_back(src_[p]);
      while (true) {
        size_t r = q;
        if (r < src_.size() && src_[r] == '_') ++r;
        if (r < src_.size() && is_digit(src_[r])) {
          digits.push_back(src_[r]);
          q = r + 1;
        } else {
          break;
        }
      }
      end = q;
    }
    errno = 0;
    char* stop = nullptr;
    unsigned long long v = std::strtoull(digits.c_str(), &stop, base);
    if (errno == ERANGE || v > static_cast<unsigned long long>(std::numeric_limits<int64_t>::max()))
      error_at(p, "integer literal " + src_.substr(p, end - p) + " does not fit in 64 bits");
    Token& t = push(Tok::Int, src_.substr(p, end - p), p);
    t.int_value = static_cast<int64_t>(v);
    return end;
  }

  size_t lex_string(size_t p) {
    char quote = src_[p];
    std::string out;
    size_t i = p + 1;
    while (true) {
      if (i >= src_.size()) error_at(p, "unterminated string literal");
      char c = src_[i];
      if (c == quote) break;
      if (c != '\\') {
        out.push_back(c);
        ++i;
        continue;
      }
      if (i + 1 >= src_.size()) error_at(p, "unterminated string literal");
      char e = src_[i + 1];
      i += 2;
      switch (e) {
        case '\\':
          out.push_back('\\');
          break;
        case '\'':
          out.push_back('\'');
          break;
        case '"':
          out.push_back('"');
          break;
        case 'a':
          out.push_back('\a');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'v':
          out.push_back('\v');
          break;
        case '\n':
          break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          char32_t cp = 0;
          for (int k = 0; k < n; ++k) {
            int h = i + k < src_.size() ? hex_value(src_[i + k]) : -1;
            if (h < 0 || src_[i + k] == quote)
              error_at(i - 2, std::string("truncated \\") + e + " escape in a string literal");
            cp = cp * 16 + static_cast<char32_t>(h);
          }
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            error_at(i - 2, "string literal escape is not a valid Unicode scalar value");
          utf8_append(out, cp);
          i += n;
          break;
        }
        case 'N': {
          int line, col;
          position(i - 2, line, col);
          throw_unsupported("\\N{...} string escape", "write the character itself", line, col);
        }
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k)
              cp = cp * 8 + static_cast<char32_t>(src_[i++] - '0');
            utf8_append(out, cp);
          } else if (static_cast<unsigned char>(e) >= 0x80) {
            // Python's backslashreplace + unicode-escape round trip: "\é" becomes "\xe9" literally.
            size_t n = utf8_char_len(src_, i - 1);
            char32_t cp = utf8_decode(std::string_view(src_).substr(i - 1, n))[0];
            char buf[16];
            std::snprintf(buf, sizeof buf, cp < 0x100 ? "\\x%02x" : cp < 0x10000 ? "\\u%04x" : "\\U%08x",
                          static_cast<unsigned>(cp));
            out += buf;
            i += n - 1;
          } else {
            out.push_back('\\');  // unknown escapes keep the backslash
            out.push_back(e);
          }
      }
    }
    push(Tok::String, std::move(out), p);
    return i + 1;
  }

  size_t lex_operator(size_t p) {
    static const char* kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwo) {
      if (starts_with(p, op)) {
        push(Tok::Op, op, p);
        return p + 2;
      }
    }
    char c = src_[p];
    static const std::string kOne = "+-/*%~[](){}><=.:|,;";
    if (kOne.find(c) == std::string::npos) {
      if (static_cast<unsigned char>(c) >= 0x80)
        error_at(p, "unexpected character '" + src_.substr(p, utf8_char_len(src_, p)) +
                        "' inside a tag (only ASCII names are supported)");
      error_at(p, std::string("unexpected character '") + c + "' inside a tag");
    }
    if (c == '(' || c == '[' || c == '{') {
      balance_.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance_.empty()) error_at(p, std::string("unexpected '") + c + "'");
      if (balance_.back() != c) error_at(p, std::string("unexpected '") + c + "', expected '" + balance_.back() + "'");
      balance_.pop_back();
    }
    push(Tok::Op, std::string(1, c), p);
    return p + 1;
  }
};

}  // namespace

std::vector<Token> tokenize(const std::string& source) { return Lexer(normalize_source(source)).run(); }

}  // namespace tiller::jinja
