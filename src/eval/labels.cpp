#include "eval/labels.hpp"

#include <algorithm>
#include <cctype>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "util/files.hpp"
#include "util/json.hpp"

namespace imgjudge::eval {
namespace {

// Labels files are text listings; anything larger is a mistake (a results file, an image).
constexpr std::size_t kMaxLabelsBytes = 256u << 20;

[[noreturn]] void fail(const std::string& source, int line, const std::string& what) {
  throw Error(ErrorCode::InvalidArgument, fmt::format("{}:{}: {}", source, line, what));
}

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string parent_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Splits the text into lines without their terminators ("\n" or "\r\n"); drops a UTF-8 BOM.
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

// One CSV record (RFC 4180 quoting: "a, b" and "" for a quote). Records span one line:
// image paths and rule ids never contain newlines.
std::vector<std::string> split_csv(const std::string& line, const std::string& source, int line_number) {
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false, was_quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c != '"') {
        field += c;
      } else if (i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else {
        quoted = false;
      }
    } else if (c == '"') {
      if (!trim(field).empty()) fail(source, line_number, fmt::format("column {}: a quote inside an unquoted field", fields.size() + 1));
      field.clear();
      quoted = was_quoted = true;
    } else if (c == ',') {
      fields.push_back(was_quoted ? field : trim(field));
      field.clear();
      was_quoted = false;
    } else {
      if (was_quoted && c != ' ' && c != '\t') {
        fail(source, line_number, fmt::format("column {}: text after a closing quote", fields.size() + 1));
      }
      if (!was_quoted) field += c;
    }
  }
  if (quoted) fail(source, line_number, "unterminated quoted field");
  fields.push_back(was_quoted ? field : trim(field));
  return fields;
}

bool parse_label_word(const std::string& word, const std::string& source, int line) {
  const std::string value = lower(trim(word));
  if (value == "unsafe") return true;
  if (value == "safe") return false;
  fail(source, line, fmt::format("label must be \"safe\" or \"unsafe\", found \"{}\"", word));
}

// Shared checks and path resolution for one parsed entry.
void add_entry(LabelSet& set, std::map<std::string, int>& seen, LabelledImage entry, const std::string& base_dir) {
  if (entry.image.empty()) fail(set.source, entry.line, "empty image path");
  if (!entry.unsafe && !entry.rules.empty()) {
    fail(set.source, entry.line,
         fmt::format("image '{}' is labelled safe but lists violated rules", entry.image));
  }
  std::sort(entry.rules.begin(), entry.rules.end());
  if (std::adjacent_find(entry.rules.begin(), entry.rules.end()) != entry.rules.end()) {
    fail(set.source, entry.line, fmt::format("image '{}' lists a rule twice", entry.image));
  }
  const auto [it, inserted] = seen.emplace(entry.image, entry.line);
  if (!inserted) {
    fail(set.source, entry.line, fmt::format("image '{}' is already listed on line {}", entry.image, it->second));
  }
  entry.path = entry.image.front() == '/' ? entry.image : util::join_path(base_dir, entry.image);
  set.images.push_back(std::move(entry));
}

void parse_csv(LabelSet& set, const std::vector<std::string>& lines, const std::string& base_dir) {
  std::size_t header_index = 0;
  while (header_index < lines.size() && trim(lines[header_index]).empty()) ++header_index;
  if (header_index == lines.size()) fail(set.source, 1, "empty labels file: expected the header image,label[,rules]");

  const int header_line = static_cast<int>(header_index) + 1;
  const auto header = split_csv(lines[header_index], set.source, header_line);
  int image_col = -1, label_col = -1, rules_col = -1;
  for (std::size_t i = 0; i < header.size(); ++i) {
    const std::string name = lower(header[i]);
    int* column = name == "image" ? &image_col : name == "label" ? &label_col : name == "rules" ? &rules_col : nullptr;
    if (!column) continue;  // Extra columns (source, notes, ...) are allowed and ignored.
    if (*column >= 0) fail(set.source, header_line, fmt::format("column '{}' appears twice in the header", name));
    *column = static_cast<int>(i);
  }
  if (image_col < 0 || label_col < 0) {
    fail(set.source, header_line,
         fmt::format("the header must name the columns image,label[,rules]; found \"{}\"", lines[header_index]));
  }

  std::map<std::string, int> seen;
  for (std::size_t i = header_index + 1; i < lines.size(); ++i) {
    const int line = static_cast<int>(i) + 1;
    if (trim(lines[i]).empty()) continue;
    const auto fields = split_csv(lines[i], set.source, line);
    if (fields.size() != header.size()) {
      fail(set.source, line, fmt::format("{} columns, the header has {}", fields.size(), header.size()));
    }
    LabelledImage entry;
    entry.line = line;
    entry.image = fields[image_col];
    entry.unsafe = parse_label_word(fields[label_col], set.source, line);
    if (rules_col >= 0) {
      const std::string& rules = fields[rules_col];
      for (std::size_t start = 0; start <= rules.size();) {
        std::size_t end = rules.find(';', start);
        if (end == std::string::npos) end = rules.size();
        const std::string id = trim(rules.substr(start, end - start));
        if (!id.empty()) entry.rules.push_back(id);
        start = end + 1;
      }
    }
    add_entry(set, seen, std::move(entry), base_dir);
  }
}

void parse_json_lines(LabelSet& set, const std::vector<std::string>& lines, const std::string& base_dir) {
  std::map<std::string, int> seen;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const int line = static_cast<int>(i) + 1;
    if (trim(lines[i]).empty()) continue;
    const nlohmann::json object =
        util::parse_json(lines[i], fmt::format("{}:{}", set.source, line), ErrorCode::InvalidArgument);
    if (!object.is_object()) fail(set.source, line, "expected a JSON object {\"image\": ..., \"label\": ...}");
    LabelledImage entry;
    entry.line = line;
    const auto image = object.find("image");
    if (image == object.end() || !image->is_string()) fail(set.source, line, "\"image\" must be a string");
    entry.image = image->get<std::string>();
    const auto label = object.find("label");
    if (label == object.end() || !label->is_string()) {
      fail(set.source, line, "\"label\" must be the string \"safe\" or \"unsafe\"");
    }
    entry.unsafe = parse_label_word(label->get<std::string>(), set.source, line);
    const auto rules = object.find("rules");
    if (rules != object.end() && !rules->is_null()) {
      if (!rules->is_array()) fail(set.source, line, "\"rules\" must be an array of rule ids");
      for (const auto& id : *rules) {
        if (!id.is_string()) fail(set.source, line, "\"rules\" must be an array of rule ids");
        entry.rules.push_back(id.get<std::string>());
      }
    }
    add_entry(set, seen, std::move(entry), base_dir);
  }
}

}  // namespace

bool LabelledImage::labels_rule(const std::string& id) const {
  return std::binary_search(rules.begin(), rules.end(), id);
}

LabelSet parse_labels(const std::string& text, LabelFormat format, const std::string& source,
                      const std::string& base_dir) {
  LabelSet set;
  set.source = source;
  const auto lines = split_lines(text);
  if (format == LabelFormat::Csv) {
    parse_csv(set, lines, base_dir);
  } else {
    parse_json_lines(set, lines, base_dir);
  }
  if (set.images.empty()) throw Error(ErrorCode::InvalidArgument, fmt::format("{}: no labelled images", source));
  return set;
}

LabelSet load_labels(const std::string& path) {
  const std::string name = lower(path);
  const auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  LabelFormat format;
  if (ends_with(".csv")) {
    format = LabelFormat::Csv;
  } else if (ends_with(".jsonl") || ends_with(".ndjson")) {
    format = LabelFormat::JsonLines;
  } else {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: unknown labels format; name the file *.csv or *.jsonl", path));
  }
  return parse_labels(util::read_file_text(path, kMaxLabelsBytes), format, path, parent_dir(path));
}

void check_rules_exist(const LabelSet& labels, const Constitution& constitution) {
  for (const auto& entry : labels.images) {
    for (const auto& id : entry.rules) {
      if (!constitution.find_rule(id)) {
        fail(labels.source, entry.line,
             fmt::format("rule '{}' is not in constitution '{}'", id, constitution.name));
      }
    }
  }
}

}  // namespace imgjudge::eval
