// CSV parsing: one pass over the text, a small state machine per field.
#include "eval/csv_reader.h"

#include <algorithm>
#include <cstdio>

#include "engine/error.h"
#include "engine/json_file.h"
#include "engine/tokenizer/unicode.h"

namespace tiller::eval {

std::vector<CsvRecord> parse_csv(std::string_view text, const std::string& origin) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  if (const size_t valid = valid_utf8_prefix(text); valid != text.size()) {
    const auto bad_line = 1 + std::count(text.begin(), text.begin() + long(valid), '\n');
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02X", unsigned(static_cast<unsigned char>(text[valid])));
    fail(origin, ": line ", bad_line, " is not valid UTF-8 (byte ", byte, " at offset ", valid,
         "); convert the file to UTF-8 first (e.g. iconv -f latin1 -t utf-8)");
  }
  std::vector<CsvRecord> records;
  CsvRecord record;
  std::string field;
  int64_t line = 1;
  record.line = 1;
  bool quoted = false, after_quote = false, field_started = false;
  auto end_field = [&] {
    record.fields.push_back(std::move(field));
    field.clear();
    quoted = after_quote = field_started = false;
  };
  auto end_record = [&] {
    end_field();
    const bool blank = record.fields.size() == 1 && record.fields[0].empty();
    if (!blank) records.push_back(std::move(record));
    record = CsvRecord{};
    record.line = line;
  };
  for (size_t i = 0; i < text.size(); i++) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          i++;
        } else {
          quoted = false;
          after_quote = true;
        }
      } else {
        if (c == '\n') line++;
        field += c;
      }
      continue;
    }
    if (c == ',') {
      end_field();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') i++;
      line++;
      end_record();
    } else if (c == '"' && !field_started) {
      quoted = field_started = true;
    } else if (after_quote) {
      fail(origin, ":", line, ": unexpected character '", std::string(1, c),
           "' after a closing quote (a quote inside a quoted field must be doubled: \"\")");
    } else {
      if (c == '"') fail(origin, ":", line, ": a quote inside an unquoted field (quote the whole field and double the quote)");
      field += c;
      field_started = true;
    }
  }
  if (quoted) fail(origin, ":", record.line, ": a quoted field opened here never closes (the file may be truncated)");
  if (field_started || !record.fields.empty()) end_record();
  return records;
}

std::vector<CsvRecord> read_csv_file(const std::filesystem::path& path) {
  return parse_csv(read_text_file(path), path.string());
}

CsvTable::CsvTable(const std::filesystem::path& path) : origin_(path.string()) { init(read_csv_file(path)); }

CsvTable::CsvTable(std::string_view text, std::string origin) : origin_(std::move(origin)) {
  init(parse_csv(text, origin_));
}

void CsvTable::init(std::vector<CsvRecord> records) {
  if (records.empty()) fail(origin_, ": the file is empty (expected a header row and at least one data row)");
  header_ = std::move(records.front().fields);
  records.erase(records.begin());
  rows_ = std::move(records);
  if (rows_.empty()) fail(origin_, ": the file has a header but no data rows");
}

std::optional<size_t> CsvTable::find(std::string_view column) const {
  for (size_t i = 0; i < header_.size(); i++) {
    if (header_[i] == column) return i;
  }
  return std::nullopt;
}

size_t CsvTable::require(std::string_view column, std::string_view what_for) const {
  if (auto i = find(column)) return *i;
  std::string found;
  for (const auto& h : header_) found += (found.empty() ? "" : ", ") + h;
  fail(origin_, ": no '", column, "' column (", what_for, "); the header has: ", found);
}

const std::string& CsvTable::at(const CsvRecord& row, size_t column) const {
  static const std::string empty;
  return column < row.fields.size() ? row.fields[column] : empty;
}

}  // namespace tiller::eval
