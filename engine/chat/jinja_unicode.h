// Unicode helpers for the Jinja interpreter: UTF-8 <-> code points, and Python's str semantics
// for whitespace, case mapping and printability (tables generated from CPython).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace tiller::jinja {

// Decodes UTF-8 into code points; invalid bytes throw (inputs are validated JSON or template text).
std::u32string utf8_decode(std::string_view s);
void utf8_append(std::string& out, char32_t cp);
std::string utf8_encode(std::u32string_view s);
// Number of code points (Python len()).
size_t utf8_length(std::string_view s);
// Length in bytes of the character starting at s[pos] (1 for invalid lead bytes).
size_t utf8_char_len(std::string_view s, size_t pos);
bool is_ascii(std::string_view s);

// str.isspace() for one character.
bool is_py_space(char32_t cp);
// Bytes of whitespace (Python's \s) starting at s[pos]: 0 when s[pos] is not whitespace.
size_t py_space_len(std::string_view s, size_t pos);
bool is_py_printable(char32_t cp);
bool is_py_linebreak(char32_t cp);  // the separators str.splitlines() uses
bool is_py_cased(char32_t cp);

// Python's str.upper(), str.lower(), str.title(), str.capitalize().
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
// Python's str.isupper() / str.islower(): some cased character, and none of the other case.
bool py_is_case(std::string_view s, bool upper);
std::string py_title(std::string_view s);
std::string py_capitalize(std::string_view s);

// str.strip([chars]) family: `chars` null means whitespace.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);
// str.split(sep=None, maxsplit=-1) and rsplit.
std::vector<std::string> py_split(std::string_view s, const std::string* sep, long maxsplit, bool from_right);
// str.replace(old, new, count) (count < 0: all).
std::string py_replace(std::string_view s, std::string_view old_s, std::string_view new_s, long count);
// str.splitlines(keepends).
std::vector<std::string> py_splitlines(std::string_view s, bool keepends);

}  // namespace tiller::jinja
