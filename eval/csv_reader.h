// RFC 4180 CSV as the safety sets ship it: UTF-8 (anything else is refused, naming the line), a
// BOM dropped, CRLF and LF both ending a record, quoted fields holding commas, doubled quotes and
// line breaks.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tiller::eval {

struct CsvRecord {
  int64_t line = 0;                 // 1-based line the record starts on (for error messages)
  std::vector<std::string> fields;
};

// Parses `text` (BOM dropped) into records; blank lines are skipped. Throws Error naming `origin`
// and the line when a quoted field never closes or a quote sits inside an unquoted field.
std::vector<CsvRecord> parse_csv(std::string_view text, const std::string& origin);
std::vector<CsvRecord> read_csv_file(const std::filesystem::path& path);

// A CSV file with a header row: columns are looked up by name.
class CsvTable {
 public:
  explicit CsvTable(const std::filesystem::path& path);
  CsvTable(std::string_view text, std::string origin);

  const std::string& origin() const { return origin_; }
  const std::vector<std::string>& header() const { return header_; }
  const std::vector<CsvRecord>& rows() const { return rows_; }
  std::optional<size_t> find(std::string_view column) const;
  // The column's index; a missing column is an Error that lists the header it found.
  size_t require(std::string_view column, std::string_view what_for) const;
  // Field `column` of `row` ("" when the row is shorter than the header).
  const std::string& at(const CsvRecord& row, size_t column) const;

 private:
  void init(std::vector<CsvRecord> records);
  std::string origin_;
  std::vector<std::string> header_;
  std::vector<CsvRecord> rows_;
};

}  // namespace tiller::eval
