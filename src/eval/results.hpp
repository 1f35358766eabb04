// The results file of an evaluation: one JSON line per (ablation, image), appended as
// soon as the image is judged, so an interrupted run resumes where it stopped.
//
//   {"image": "a.png", "ablation": "full", "verdict": {...imgjudge.verdict/2...}}
//   {"image": "b.png", "ablation": "full", "error": {"code": "invalid_image", "message": "..."}}
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "imgjudge/error.hpp"
#include "imgjudge/verdict.hpp"

namespace imgjudge::eval {

/// What metrics and plots need of one chain item.
struct ItemRecord {
  std::string outcome;     ///< accepted | rejected | uncertain | not_evaluated
  std::string decided_by;  ///< none | prior | direct | region | reasoning | undecided
  /// M(x,c) and m0 of the item's statement with the highest M (an item is an OR: its
  /// most likely alternative stands for it). Absent if no statement was scored.
  std::optional<double> score, prior;
};

struct RuleRecord {
  std::string id;
  std::optional<double> relevance;
  bool judged = false;
  bool violated = false;
  std::vector<ItemRecord> items;
};

/// One line of the results file, reduced to what the evaluation reads.
struct ImageRecord {
  std::string image;
  std::string ablation;
  int line = 0;  ///< Line in the results file.
  bool failed = false;
  std::string error_code, error_message;
  // The verdict (when !failed):
  bool unsafe = false;
  bool review = false;  ///< Decision "review": counted apart from the confusion matrix.
  std::vector<std::string> violated_rules;
  std::vector<RuleRecord> rules;
  int questions_scored = 0;
  int reasoning_calls = 0;
  double total_ms = 0;
  std::string constitution_hash;
  /// The verdict's "models": ids of the models that judged ("" for none).
  std::string vlm_model, relevance_model, locator_model;

  const RuleRecord* find_rule(const std::string& id) const;
};

/// Builds a record from one results line. Throws Error(InvalidArgument) naming `where`.
ImageRecord parse_record(const std::string& line, const std::string& where);

/// The results file: reads what is there, then appends.
class ResultsFile {
 public:
  /// Reads `path` if it exists (with `restart`, empties it first). Only lines that end in
  /// a newline count: a last line cut short by a crash is dropped and cut off the file, so
  /// the next append starts on a fresh line. Any other malformed line is an error.
  /// An empty `path` keeps the results in memory only (nothing to resume from).
  explicit ResultsFile(std::string path, bool restart = false);

  const std::string& path() const { return path_; }  ///< "" when kept in memory only.
  const std::vector<ImageRecord>& records() const { return records_; }
  /// The record of an image under an ablation (the first one, if the file lists it twice).
  /// The pointer is valid until the next append.
  const ImageRecord* find(const std::string& ablation, const std::string& image) const;
  /// Bytes of an incomplete last line that were dropped when the file was opened.
  std::size_t dropped_bytes() const { return dropped_bytes_; }

  void append_verdict(const std::string& ablation, const std::string& image, const Verdict& verdict);
  void append_error(const std::string& ablation, const std::string& image, const Error& error);

 private:
  void append_line(const std::string& json_line);

  std::string path_;
  std::vector<ImageRecord> records_;
  std::map<std::pair<std::string, std::string>, std::size_t> index_;  // (ablation, image) -> record
  int lines_ = 0;
  std::size_t dropped_bytes_ = 0;
};

}  // namespace imgjudge::eval
