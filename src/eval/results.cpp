#include "eval/results.hpp"
#include "util/json.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace imgjudge::eval {
namespace {

using nlohmann::json;

// A verdict line is a few kB per rule; this only guards against a file that is not ours.
constexpr std::size_t kMaxLineBytes = 64u << 20;

std::optional<double> optional_number(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  return it->get<double>();
}

ItemRecord parse_item(const json& item) {
  ItemRecord record;
  record.outcome = item.at("outcome").get<std::string>();
  record.decided_by = item.at("decided_by").get<std::string>();
  for (const auto& statement : item.at("statements")) {
    const auto score = optional_number(statement, "score");
    if (!score || (record.score && *score <= *record.score)) continue;
    record.score = score;
    record.prior = optional_number(statement, "prior");
  }
  return record;
}

void parse_verdict(const json& verdict, ImageRecord& record) {
  // /1 (before the "review" decision) is read too, so older results files resume.
  const std::string schema = verdict.at("schema").get<std::string>();
  if (schema != "imgjudge.verdict/2" && schema != "imgjudge.verdict/1") {
    throw Error(ErrorCode::InvalidArgument, "unknown verdict schema " + verdict.at("schema").dump());
  }
  record.unsafe = verdict.at("decision").get<std::string>() == "unsafe";
  record.review = verdict.at("decision").get<std::string>() == "review";
  record.violated_rules = verdict.at("violated_rules").get<std::vector<std::string>>();
  for (const auto& rule : verdict.at("rules")) {
    RuleRecord r;
    r.id = rule.at("id").get<std::string>();
    r.relevance = optional_number(rule, "relevance");
    r.judged = rule.at("judged").get<bool>();
    r.violated = rule.at("violated").get<bool>();
    for (const auto& item : rule.at("items")) r.items.push_back(parse_item(item));
    record.rules.push_back(std::move(r));
  }
  record.questions_scored = verdict.at("stats").at("questions_scored").get<int>();
  record.reasoning_calls = verdict.at("stats").at("reasoning_calls").get<int>();
  record.total_ms = verdict.at("timings_ms").at("total").get<double>();
  record.constitution_hash = verdict.at("constitution").at("hash").get<std::string>();
  if (const auto models = verdict.find("models"); models != verdict.end() && models->is_object()) {
    auto id = [&](const char* key) {
      const auto it = models->find(key);
      return it == models->end() || !it->is_string() ? std::string() : it->get<std::string>();
    };
    record.vlm_model = id("vlm");
    record.relevance_model = id("relevance");
    record.locator_model = id("locator");
  }
}

}  // namespace

const RuleRecord* ImageRecord::find_rule(const std::string& id) const {
  for (const auto& rule : rules) {
    if (rule.id == id) return &rule;
  }
  return nullptr;
}

ImageRecord parse_record(const std::string& line, const std::string& where) {
  ImageRecord record;
  try {
    const json object = util::parse_json(line, "", ErrorCode::InvalidArgument);  // `where` is added below
    record.image = object.at("image").get<std::string>();
    record.ablation = object.at("ablation").get<std::string>();
    if (const auto error = object.find("error"); error != object.end()) {
      record.failed = true;
      record.error_code = error->at("code").get<std::string>();
      record.error_message = error->at("message").get<std::string>();
    } else {
      parse_verdict(object.at("verdict"), record);
    }
  } catch (const json::exception& e) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("{}: not an evaluation results line: {}", where, e.what()));
  } catch (const Error& e) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("{}: not an evaluation results line: {}", where, e.what()));
  }
  return record;
}

ResultsFile::ResultsFile(std::string path, bool restart) : path_(std::move(path)) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path_.empty()) return;  // In memory only.
  if (restart || !fs::exists(path_, ec)) {
    std::ofstream create(path_, std::ios::binary | std::ios::trunc);
    if (!create) throw Error(ErrorCode::Io, fmt::format("{}: cannot create: {}", path_, std::strerror(errno)));
    return;
  }
  if (fs::is_directory(path_, ec)) throw Error(ErrorCode::Io, fmt::format("{}: is a directory", path_));
  std::ifstream in(path_, std::ios::binary);
  if (!in) throw Error(ErrorCode::Io, fmt::format("{}: cannot open: {}", path_, std::strerror(errno)));

  std::string line;
  std::uintmax_t complete_bytes = 0;  // Offset just past the last newline.
  std::uintmax_t offset = 0;
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    const std::size_t got = static_cast<std::size_t>(in.gcount());
    for (std::size_t i = 0; i < got; ++i) {
      if (chunk[i] != '\n') {
        line += chunk[i];
        if (line.size() > kMaxLineBytes) {
          throw Error(ErrorCode::LimitExceeded,
                      fmt::format("{}:{}: line longer than {} bytes", path_, lines_ + 1, kMaxLineBytes));
        }
        continue;
      }
      ++lines_;
      complete_bytes = offset + i + 1;
      if (line.find_first_not_of(" \t\r") != std::string::npos) {
        ImageRecord record = parse_record(line, fmt::format("{}:{}", path_, lines_));
        record.line = lines_;
        // A pair listed twice (two runs racing on one file) keeps its first result.
        if (index_.emplace(std::make_pair(record.ablation, record.image), records_.size()).second) {
          records_.push_back(std::move(record));
        }
      }
      line.clear();
    }
    offset += got;
  }
  if (in.bad()) throw Error(ErrorCode::Io, fmt::format("{}: read error", path_));
  in.close();
  if (!line.empty()) {
    // A crash in the middle of a write leaves a last line without its newline: it was
    // never finished, so drop it and judge that image again.
    dropped_bytes_ = line.size();
    fs::resize_file(path_, complete_bytes, ec);
    if (ec) throw Error(ErrorCode::Io, fmt::format("{}: cannot cut its incomplete last line: {}", path_, ec.message()));
  }
}

const ImageRecord* ResultsFile::find(const std::string& ablation, const std::string& image) const {
  const auto it = index_.find({ablation, image});
  return it == index_.end() ? nullptr : &records_[it->second];
}

void ResultsFile::append_verdict(const std::string& ablation, const std::string& image, const Verdict& verdict) {
  json line = {{"image", image}, {"ablation", ablation}, {"verdict", json::parse(verdict.to_json())}};
  append_line(line.dump(-1, ' ', false, json::error_handler_t::replace));
}

void ResultsFile::append_error(const std::string& ablation, const std::string& image, const Error& error) {
  json line = {{"image", image},
               {"ablation", ablation},
               {"error", {{"code", error_code_name(error.code())}, {"message", error.what()}}}};
  append_line(line.dump(-1, ' ', false, json::error_handler_t::replace));
}

void ResultsFile::append_line(const std::string& json_line) {
  // Parse what is written with the reader's code, so a resumed run sees exactly this.
  ImageRecord record = parse_record(json_line, fmt::format("{}:{}", path_.empty() ? "<results>" : path_, lines_ + 1));
  if (!path_.empty()) {
    std::ofstream out(path_, std::ios::binary | std::ios::app);
    out << json_line << '\n';
    out.flush();
    if (!out) throw Error(ErrorCode::Io, fmt::format("{}: cannot append: {}", path_, std::strerror(errno)));
  }
  record.line = ++lines_;
  if (index_.emplace(std::make_pair(record.ablation, record.image), records_.size()).second) {
    records_.push_back(std::move(record));
  }
}

}  // namespace imgjudge::eval
