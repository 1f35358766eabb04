#include "tokenizer/bpe.hpp"

#include <algorithm>
#include <functional>
#include <queue>

#include <fmt/core.h>

#include "imgjudge/error.hpp"
#include "tokenizer/unicode_text.hpp"

namespace imgjudge::tokenizer {
namespace {

// Longer words are rare and would crowd the cache; they are merged every time.
constexpr std::size_t kMaxCachedWordBytes = 128;
constexpr std::size_t kMaxCacheEntries = 50'000;

struct ByteTables {
  std::vector<std::string> to_unicode;                 // byte -> UTF-8 of its character
  std::unordered_map<char32_t, unsigned char> from_unicode;
};

const ByteTables& byte_tables() {
  static const ByteTables tables = [] {
    ByteTables t;
    t.to_unicode.resize(256);
    // Printable Latin-1 bytes stand for themselves; the others (controls,
    // space, 0x7F-0xA0, 0xAD) are shifted to U+0100.. in byte order.
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
    char32_t next_shifted = 256;
    for (int b = 0; b < 256; ++b) {
      const char32_t c = printable(b) ? static_cast<char32_t>(b) : next_shifted++;
      unicode::append_utf8(t.to_unicode[static_cast<std::size_t>(b)], c);
      t.from_unicode.emplace(c, static_cast<unsigned char>(b));
    }
    return t;
  }();
  return tables;
}

}  // namespace

const std::vector<std::string>& byte_to_unicode() { return byte_tables().to_unicode; }

void append_byte_level(std::string_view bytes, std::string& out) {
  const auto& table = byte_tables().to_unicode;
  for (char b : bytes) out.append(table[static_cast<unsigned char>(b)]);
}

void append_byte_level_decoded(std::string_view token, std::string& out) {
  const auto& table = byte_tables().from_unicode;
  for (std::size_t pos = 0; pos < token.size();) {
    std::size_t length = 0;
    const char32_t c = unicode::decode_at(token, pos, length);
    const auto found = table.find(c);
    if (found != table.end()) {
      out.push_back(static_cast<char>(found->second));
    } else {
      out.append(token.substr(pos, length));
    }
    pos += length;
  }
}

BpeModel::BpeModel(Vocab vocab, const Merges& merges, BpeOptions options, const std::string& origin)
    : options_(std::move(options)), vocab_(std::move(vocab)) {
  std::int32_t max_id = -1;
  for (const auto& [token, id] : vocab_) {
    if (id < 0) throw Error(ErrorCode::InvalidModel, fmt::format("{}: token '{}' has negative id {}", origin, token, id));
    max_id = std::max(max_id, id);
  }
  id_to_token_.resize(static_cast<std::size_t>(max_id) + 1);
  id_used_.assign(id_to_token_.size(), false);
  for (const auto& [token, id] : vocab_) {
    if (id_used_[static_cast<std::size_t>(id)]) {
      throw Error(ErrorCode::InvalidModel, fmt::format("{}: id {} is used by both '{}' and '{}'", origin, id,
                                                       id_to_token_[static_cast<std::size_t>(id)], token));
    }
    id_used_[static_cast<std::size_t>(id)] = true;
    id_to_token_[static_cast<std::size_t>(id)] = token;
  }
  symbols_.reserve(vocab_.size() + merges.size() / 8);
  symbol_ids_.reserve(vocab_.size() + merges.size() / 8);
  for (std::size_t id = 0; id < id_to_token_.size(); ++id) {
    if (id_used_[id]) intern(id_to_token_[id]);
  }
  const bool rust = options_.reference == BpeReference::RustTokenizers;
  if (rust) check_merges_join_vocab_tokens(merges, origin);
  // Rust drops the continuing-subword prefix from the right part of a merge
  // (always its first prefix-length bytes); Python keeps the plain join.
  const std::size_t right_cut = rust ? options_.continuing_subword_prefix.size() : 0;
  merges_.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const std::int32_t left_symbol = intern(left);
    const std::int32_t right_symbol = intern(right);
    const std::int32_t result = intern(left + right.substr(std::min(right_cut, right.size())));
    // A repeated pair takes its last rank, as both reference implementations
    // build their rank table (a Python dict / a Rust HashMap filled in order).
    merges_.insert_or_assign(pair_key(left_symbol, right_symbol),
                             MergeRule{static_cast<std::uint32_t>(rank), result});
  }
  if (options_.unk_token) {
    const auto found = vocab_.find(*options_.unk_token);
    if (found == vocab_.end()) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{}: unk token '{}' is not in the vocabulary", origin, *options_.unk_token));
    }
    unk_id_ = found->second;
    unk_symbol_ = symbol_ids_.at(*options_.unk_token);
  }
  if (options_.byte_fallback) {
    // Rust would give an unk (or drop the character) when a byte token is
    // missing; no real byte-fallback vocabulary lacks one, so a gap means a
    // broken file and is reported instead of silently losing text.
    byte_symbols_.resize(256);
    for (int byte = 0; byte < 256; ++byte) {
      const std::string token = fmt::format("<0x{:02X}>", byte);
      const auto found = symbol_ids_.find(token);
      if (found == symbol_ids_.end() || symbol_token_[static_cast<std::size_t>(found->second)] < 0) {
        throw Error(ErrorCode::InvalidModel,
                    fmt::format("{}: model.byte_fallback is true but the vocabulary lacks the byte token '{}' "
                                "(byte fallback needs all 256 tokens <0x00>..<0xFF>)",
                                origin, token));
      }
      byte_symbols_[static_cast<std::size_t>(byte)] = found->second;
    }
  }
}

// The Rust BPE builder refuses a merge whose parts or result are not vocab
// tokens (MergeTokenOutOfVocabulary); so do we, so that every symbol of a
// word is a vocab token.
void BpeModel::check_merges_join_vocab_tokens(const Merges& merges, const std::string& origin) const {
  const std::size_t prefix_length = options_.continuing_subword_prefix.size();
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const std::string result = left + right.substr(std::min(prefix_length, right.size()));
    for (const std::string* token : {&left, &right, &result}) {
      if (!vocab_.count(*token)) {
        throw Error(ErrorCode::InvalidModel, fmt::format("{}: model.merges[{}] ('{}' '{}'): token '{}' is not in the vocabulary",
                                                         origin, rank, left, right, *token));
      }
    }
  }
}

std::int32_t BpeModel::intern(const std::string& symbol) {
  const auto [it, inserted] = symbol_ids_.emplace(symbol, static_cast<std::int32_t>(symbols_.size()));
  if (inserted) {
    symbols_.push_back(symbol);
    const auto in_vocab = vocab_.find(symbol);
    symbol_token_.push_back(in_vocab == vocab_.end() ? -1 : in_vocab->second);
  }
  return it->second;
}

std::optional<std::int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto found = vocab_.find(std::string(token));
  if (found == vocab_.end()) return std::nullopt;
  return found->second;
}

const std::string* BpeModel::id_to_token(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= id_to_token_.size() || !id_used_[static_cast<std::size_t>(id)]) {
    return nullptr;
  }
  return &id_to_token_[static_cast<std::size_t>(id)];
}

void BpeModel::encode_word(std::string_view word, std::vector<std::int32_t>& ids) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (const auto whole = token_to_id(word)) {
      ids.push_back(*whole);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto cached = cache_.find(std::string(word));
    if (cached != cache_.end()) {
      ids.insert(ids.end(), cached->second.begin(), cached->second.end());
      return;
    }
  }
  std::vector<std::int32_t> word_ids;
  merge_symbols(word, word_ids);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), word_ids);
  }
  ids.insert(ids.end(), word_ids.begin(), word_ids.end());
}

// Turns the word into its initial symbols (one per character; the last
// carries the end-of-word suffix and all but the first the
// continuing-subword prefix), merges them as the chosen reference does, and
// appends the ids of the result.
void BpeModel::merge_symbols(std::string_view word, std::vector<std::int32_t>& ids) const {
  const bool rust = options_.reference == BpeReference::RustTokenizers;
  std::vector<Node> nodes;
  std::vector<std::string> unknown;  // PythonSlowClass: initial symbols with no interned id.
  const auto append = [&](std::int32_t symbol) {
    const auto index = static_cast<std::int32_t>(nodes.size());
    if (index > 0) nodes.back().next = index;
    nodes.push_back(Node{symbol, index - 1, -1, true});
  };

  // Rust keeps an unknown character pending so that fuse_unk can extend it
  // over the next unknown characters; a known character flushes it.
  std::int32_t pending_unk_symbol = -1;
  for (std::size_t pos = 0; pos < word.size();) {
    std::size_t length = 0;
    unicode::decode_at(word, pos, length);
    length = std::min(length, word.size() - pos);
    std::string symbol;
    if (pos > 0) symbol += options_.continuing_subword_prefix;
    symbol.append(word.substr(pos, length));
    pos += length;
    if (pos == word.size()) symbol += options_.end_of_word_suffix;

    const auto found = symbol_ids_.find(symbol);
    if (!rust) {
      if (found != symbol_ids_.end()) {
        append(found->second);
      } else {
        append(-1 - static_cast<std::int32_t>(unknown.size()));
        unknown.push_back(std::move(symbol));
      }
      continue;
    }
    if (found != symbol_ids_.end() && symbol_token_[static_cast<std::size_t>(found->second)] >= 0) {
      if (pending_unk_symbol >= 0) append(pending_unk_symbol);
      pending_unk_symbol = -1;
      append(found->second);
      continue;
    }
    if (options_.byte_fallback) {
      // Like Rust, this does not flush a pending unk; with the complete byte
      // table required at load no unk can be pending here.
      for (const char byte : symbol) append(byte_symbols_[static_cast<unsigned char>(byte)]);
      continue;
    }
    if (unk_symbol_ >= 0) {
      if (pending_unk_symbol >= 0 && !options_.fuse_unk) append(pending_unk_symbol);
      pending_unk_symbol = unk_symbol_;
    }
    // Otherwise the character is dropped, as Rust does without unk token.
  }
  if (pending_unk_symbol >= 0) append(pending_unk_symbol);
  if (nodes.empty()) return;

  if (rust) {
    merge_one_at_a_time(nodes);
  } else {
    merge_by_rank_batches(nodes);
  }

  for (std::int32_t i = 0; i >= 0; i = nodes[static_cast<std::size_t>(i)].next) {
    const std::int32_t symbol = nodes[static_cast<std::size_t>(i)].symbol;
    const std::int32_t token = symbol >= 0 ? symbol_token_[static_cast<std::size_t>(symbol)] : -1;
    if (token >= 0) {
      ids.push_back(token);
      continue;
    }
    if (unk_id_) {
      ids.push_back(*unk_id_);
      continue;
    }
    const std::string& text = symbol >= 0 ? symbols_[static_cast<std::size_t>(symbol)]
                                          : unknown[static_cast<std::size_t>(-1 - symbol)];
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("BPE symbol '{}' is not in the vocabulary and the tokenizer has no unk token", text));
  }
}

const BpeModel::MergeRule* BpeModel::rule_after(const std::vector<Node>& nodes, std::int32_t left) const {
  if (left < 0) return nullptr;
  const std::int32_t right = nodes[static_cast<std::size_t>(left)].next;
  if (right < 0) return nullptr;
  const std::int32_t a = nodes[static_cast<std::size_t>(left)].symbol;
  const std::int32_t b = nodes[static_cast<std::size_t>(right)].symbol;
  if (a < 0 || b < 0) return nullptr;
  const auto found = merges_.find(pair_key(a, b));
  return found == merges_.end() ? nullptr : &found->second;
}

// The reference Python `bpe()`: repeatedly take the lowest-ranked adjacent
// pair present and join *all* its non-overlapping occurrences left to right.
// Done with a heap of (rank, position) and a linked list of symbols, so a
// long word costs O(n log n) rather than the reference's O(n^2) rescans and
// tuple copies.
void BpeModel::merge_by_rank_batches(std::vector<Node>& nodes) const {
  using Entry = std::pair<std::uint32_t, std::int32_t>;  // (rank, left node)
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue;
  const auto push_pair = [&](std::int32_t left) {
    if (const MergeRule* rule = rule_after(nodes, left)) queue.emplace(rule->rank, left);
  };
  for (std::size_t i = 0; i + 1 < nodes.size(); ++i) push_pair(static_cast<std::int32_t>(i));

  std::vector<std::int32_t> batch;
  std::vector<std::int32_t> merged;
  while (!queue.empty()) {
    const std::uint32_t rank = queue.top().first;
    batch.clear();
    while (!queue.empty() && queue.top().first == rank) {
      batch.push_back(queue.top().second);
      queue.pop();
    }
    std::sort(batch.begin(), batch.end());
    batch.erase(std::unique(batch.begin(), batch.end()), batch.end());
    merged.clear();
    for (const std::int32_t left : batch) {
      Node& node = nodes[static_cast<std::size_t>(left)];
      if (!node.alive) continue;  // Swallowed by a merge to its left in this batch.
      const MergeRule* rule = rule_after(nodes, left);
      if (!rule || rule->rank != rank) continue;  // Stale entry.
      Node& right = nodes[static_cast<std::size_t>(node.next)];
      right.alive = false;
      node.symbol = rule->result;
      node.next = right.next;
      if (node.next >= 0) nodes[static_cast<std::size_t>(node.next)].prev = left;
      merged.push_back(left);
    }
    // New neighbours are ranked only after the whole batch, like the
    // reference which finishes one pair type before choosing the next.
    for (const std::int32_t left : merged) {
      push_pair(nodes[static_cast<std::size_t>(left)].prev);
      push_pair(left);
    }
  }
}

// Rust `Word::merge_all` (no dropout): pop the lowest (rank, position), skip
// it if its pair no longer produces the same token, merge, and queue the two
// new neighbour pairs at once. This differs from the Python batches only for
// merge tables where a merge result takes part in a lower-ranked merge.
void BpeModel::merge_one_at_a_time(std::vector<Node>& nodes) const {
  struct Entry {
    std::uint32_t rank;
    std::int32_t left;
    std::int32_t result;
    bool operator>(const Entry& other) const {
      return rank != other.rank ? rank > other.rank : left > other.left;
    }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue;
  const auto push_pair = [&](std::int32_t left) {
    if (const MergeRule* rule = rule_after(nodes, left)) queue.push(Entry{rule->rank, left, rule->result});
  };
  for (std::size_t i = 0; i + 1 < nodes.size(); ++i) push_pair(static_cast<std::int32_t>(i));

  while (!queue.empty()) {
    const Entry top = queue.top();
    queue.pop();
    Node& node = nodes[static_cast<std::size_t>(top.left)];
    if (!node.alive) continue;
    const MergeRule* rule = rule_after(nodes, top.left);
    if (!rule || rule->result != top.result) continue;  // Stale entry.
    Node& right = nodes[static_cast<std::size_t>(node.next)];
    right.alive = false;
    node.symbol = top.result;
    node.next = right.next;
    if (node.next >= 0) nodes[static_cast<std::size_t>(node.next)].prev = top.left;
    push_pair(node.prev);
    push_pair(top.left);
  }
}

}  // namespace imgjudge::tokenizer
