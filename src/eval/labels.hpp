// Labelled image sets for evaluation: which images are unsafe, and which rules they
// violate (docs/evaluation.md). Torch-free.
#pragma once

#include <string>
#include <vector>

#include "imgjudge/constitution.hpp"

namespace imgjudge::eval {

/// One labelled image.
struct LabelledImage {
  std::string image;  ///< As written in the labels file: the key of its results.
  std::string path;   ///< Resolved against the labels file's folder (absolute paths kept).
  bool unsafe = false;
  /// Violated rule ids. Empty for a safe image; may be empty for an unsafe image whose
  /// rules are not known (it then counts for image-level metrics only).
  std::vector<std::string> rules;
  int line = 0;  ///< 1-based line in the labels file, for error messages.

  /// True if the label says which rules are violated: a safe image (none) or an
  /// unsafe image with at least one rule id. Only these count for per-rule metrics.
  bool has_rule_truth() const { return !unsafe || !rules.empty(); }
  bool labels_rule(const std::string& id) const;
};

struct LabelSet {
  std::string source;  ///< The labels file, used in messages.
  std::vector<LabelledImage> images;
};

enum class LabelFormat { Csv, JsonLines };

/// Reads a labels file; the format comes from the extension (.csv, or .jsonl / .ndjson).
/// Throws Error(Io) if unreadable and Error(InvalidArgument) with "file:line: what" for
/// anything malformed.
LabelSet load_labels(const std::string& path);

/// Parses labels text. `base_dir` resolves relative image paths ("" keeps them as written).
LabelSet parse_labels(const std::string& text, LabelFormat format, const std::string& source,
                      const std::string& base_dir);

/// Throws Error(InvalidArgument) "file:line: rule 'x' is not in constitution 'y'" for a
/// labelled rule id the constitution does not define.
void check_rules_exist(const LabelSet& labels, const Constitution& constitution);

}  // namespace imgjudge::eval
