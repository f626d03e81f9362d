#include "model/flat_forest.h"

#if defined(__x86_64__)
#define APX_X86_64 1
#include <immintrin.h>
#else
#define APX_X86_64 0
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "model/xgboost_json_internal.h"

namespace apx::model {
namespace {

using internal::Link;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Layouts
//
// Both evaluators read rows from a block transposed to column-major: column c of the block is
// xt[c * kBlockRows + row_idx]. A node's "feature word" holds c * kBlockRows (so that the value
// of row r is xt[word & kColumnMask] + r) and, in bit 31, whether NaN goes right.
// Column num_features is a sentinel filled with -inf: a general-layout leaf reads it with
// threshold +inf, so it always goes "left", to itself, and a row that reached a leaf stays
// there for the remaining levels. Complete-layout padding nodes read column 0 instead: both
// their subtrees hold the same leaf value, so the direction does not matter.

constexpr uint32_t kDefaultRightBit = 1u << 31;
constexpr uint32_t kColumnMask = ~kDefaultRightBit;
constexpr float kInf = std::numeric_limits<float>::infinity();
// The feature word must not reach bit 31, and AVX-512 gathers take signed 32-bit indices.
constexpr size_t kMaxFeatures = (size_t{1} << 30) / kBlockRows - 1;

// General layout: all trees' nodes in one set of arrays, each tree in breadth-first order with
// siblings adjacent (right child = left + 1). Leaves point to themselves.
struct GeneralForest {
  std::vector<uint32_t> feature_word;  // column * kBlockRows | default-right bit
  std::vector<float> threshold;        // go left iff x < threshold; +inf for leaves
  std::vector<uint32_t> left;          // left child; right child is left + 1; leaf: itself
  std::vector<float> leaf_value;       // leaf output (0 for internal nodes)
  std::vector<uint32_t> root;          // per tree
  std::vector<uint32_t> depth;         // per tree: edges on the longest root-leaf path
  int max_depth = 0;
};

// Complete layout: every tree padded to a complete binary tree of depth `depth`, internal nodes
// in heap order (children of i are 2i+1 and 2i+2), leaves apart. Per-tree arrays start on
// 64-byte boundaries (strides are multiples of 16 entries).
struct CompleteForest {
  int depth = 0;
  size_t node_stride = 0;             // 2^depth - 1 plus slack for 16/32-entry table loads
  size_t leaf_stride = 0;             // >= 2^depth
  std::vector<int32_t> feature_word;  // as in GeneralForest (int32 for AVX-512)
  std::vector<float> threshold;
  std::vector<float> leaf_value;  // [tree][leaf_idx], leaf_idx = heap index - (2^depth - 1)
};

size_t RoundUp16(size_t n) { return (n + 15) / 16 * 16; }

// ---------------------------------------------------------------------------------------------
// JSON -> GeneralForest

struct RawTree {
  std::vector<long long> left;
  std::vector<long long> right;
  std::vector<long long> split_index;
  std::vector<float> split_condition;
  std::vector<uint8_t> default_left;
};

// The array `key` of `tree`, which must hold exactly n entries.
Result<const json*> FindArray(const json& tree, const char* key, size_t n, std::string_view where) {
  const json* array = internal::Find(tree, key);
  if (array == nullptr || !array->is_array() || array->size() != n) {
    return Status::DataLoss(std::string(where) + "." + key + " is missing or does not have " +
                            std::to_string(n) + " entries");
  }
  return array;
}

Status ReadIntArray(const json& tree, const char* key, size_t n, std::string_view where,
                    std::vector<long long>* out) {
  APX_ASSIGN_OR_RETURN(const json* array, FindArray(tree, key, n, where));
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    const json& value = (*array)[i];
    if (value.is_number_integer()) {
      (*out)[i] = value.get<long long>();
    } else if (value.is_boolean()) {
      (*out)[i] = value.get<bool>() ? 1 : 0;
    } else {
      return Status::DataLoss(std::string(where) + "." + key + "[" + std::to_string(i) +
                              "] is not an integer");
    }
  }
  return Status::Ok();
}

Status ReadFloatArray(const json& tree, const char* key, size_t n, std::string_view where,
                      std::vector<float>* out) {
  APX_ASSIGN_OR_RETURN(const json* array, FindArray(tree, key, n, where));
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    const json& value = (*array)[i];
    if (!value.is_number()) {
      return Status::DataLoss(std::string(where) + "." + key + "[" + std::to_string(i) +
                              "] is not a number");
    }
    // Exact: ParseJson rounded the decimal text straight to float.
    (*out)[i] = static_cast<float>(value.get<double>());
  }
  return Status::Ok();
}

Result<RawTree> ReadRawTree(const json& tree, size_t tree_idx, size_t num_features) {
  const std::string where = "trees[" + std::to_string(tree_idx) + "]";
  const json* param = internal::Find(tree, "tree_param");
  if (param == nullptr) return Status::DataLoss(where + ".tree_param is missing");
  APX_ASSIGN_OR_RETURN(const long long num_nodes,
                       internal::IntField(*param, "num_nodes", where + ".tree_param"));
  if (num_nodes < 1 || num_nodes > (1ll << 30)) {
    return Status::DataLoss(where + ".tree_param.num_nodes is " + std::to_string(num_nodes));
  }
  if (internal::Find(*param, "size_leaf_vector") != nullptr) {
    APX_ASSIGN_OR_RETURN(const long long size,
                         internal::IntField(*param, "size_leaf_vector", where + ".tree_param"));
    if (size > 1) return Status::InvalidArgument(where + " has vector leaves (multi-target)");
  }
  const size_t n = static_cast<size_t>(num_nodes);
  RawTree raw;
  std::vector<long long> default_left;
  APX_RETURN_IF_ERROR(ReadIntArray(tree, "left_children", n, where, &raw.left));
  APX_RETURN_IF_ERROR(ReadIntArray(tree, "right_children", n, where, &raw.right));
  APX_RETURN_IF_ERROR(ReadIntArray(tree, "split_indices", n, where, &raw.split_index));
  APX_RETURN_IF_ERROR(ReadFloatArray(tree, "split_conditions", n, where, &raw.split_condition));
  APX_RETURN_IF_ERROR(ReadIntArray(tree, "default_left", n, where, &default_left));
  if (internal::Find(tree, "split_type") != nullptr) {
    std::vector<long long> split_type;
    APX_RETURN_IF_ERROR(ReadIntArray(tree, "split_type", n, where, &split_type));
    for (size_t node_idx = 0; node_idx < n; ++node_idx) {
      if (split_type[node_idx] != 0 && raw.left[node_idx] != -1) {
        return Status::InvalidArgument(where + " node " + std::to_string(node_idx) +
                                       " is a categorical split (not supported)");
      }
    }
  }
  raw.default_left.resize(n);
  for (size_t node_idx = 0; node_idx < n; ++node_idx) {
    raw.default_left[node_idx] = default_left[node_idx] != 0;
    const bool is_leaf = raw.left[node_idx] == -1;
    if (is_leaf != (raw.right[node_idx] == -1)) {
      return Status::DataLoss(where + " node " + std::to_string(node_idx) +
                              " has exactly one child");
    }
    if (!is_leaf && (raw.split_index[node_idx] < 0 ||
                     static_cast<size_t>(raw.split_index[node_idx]) >= num_features)) {
      return Status::DataLoss(where + " node " + std::to_string(node_idx) + " splits on feature " +
                              std::to_string(raw.split_index[node_idx]) + " of " +
                              std::to_string(num_features));
    }
  }
  return raw;
}

// Appends one tree in breadth-first order, children of a node placed next to each other.
Status AppendTree(const RawTree& raw, size_t tree_idx, size_t num_features, GeneralForest* forest) {
  const std::string where = "trees[" + std::to_string(tree_idx) + "]";
  const size_t n = raw.left.size();
  const uint32_t base = static_cast<uint32_t>(forest->threshold.size());
  // Breadth-first: old ids in visiting order; new id of a node = base + its position.
  std::vector<uint32_t> order = {0};
  std::vector<uint32_t> level = {0};
  std::vector<uint8_t> seen(n, 0);
  seen[0] = 1;
  std::vector<uint32_t> new_left;  // by position; children's positions
  int depth = 0;
  for (size_t pos = 0; pos < order.size(); ++pos) {
    const uint32_t old_id = order[pos];
    if (raw.left[old_id] == -1) {
      new_left.push_back(base + static_cast<uint32_t>(pos));  // leaf: points to itself
      continue;
    }
    new_left.push_back(base + static_cast<uint32_t>(order.size()));
    for (const long long child : {raw.left[old_id], raw.right[old_id]}) {
      if (child < 0 || static_cast<size_t>(child) >= n || seen[child]) {
        return Status::DataLoss(where + " node " + std::to_string(old_id) +
                                " has an invalid or shared child " + std::to_string(child));
      }
      seen[child] = 1;
      order.push_back(static_cast<uint32_t>(child));
      level.push_back(level[pos] + 1);
      depth = std::max<int>(depth, static_cast<int>(level[pos]) + 1);
    }
  }
  const uint32_t sentinel_word = static_cast<uint32_t>(num_features * kBlockRows);
  for (size_t pos = 0; pos < order.size(); ++pos) {
    const uint32_t old_id = order[pos];
    const bool is_leaf = raw.left[old_id] == -1;
    if (is_leaf) {
      forest->feature_word.push_back(sentinel_word);
      forest->threshold.push_back(kInf);
      forest->leaf_value.push_back(raw.split_condition[old_id]);
    } else {
      const uint32_t column = static_cast<uint32_t>(raw.split_index[old_id]);
      forest->feature_word.push_back(column * kBlockRows |
                                     (raw.default_left[old_id] ? 0u : kDefaultRightBit));
      forest->threshold.push_back(raw.split_condition[old_id]);
      forest->leaf_value.push_back(0.0f);
    }
    forest->left.push_back(new_left[pos]);
  }
  // The layout invariant every kernel relies on: the right child of an internal node sits
  // right after its left child, so next = left + !go_left.
  for (size_t pos = 0; pos < order.size(); ++pos) {
    const uint32_t old_id = order[pos];
    if (raw.left[old_id] == -1) continue;
    const uint32_t left_pos = new_left[pos] - base;
    APX_CHECK(order[left_pos] == static_cast<uint32_t>(raw.left[old_id]));
    APX_CHECK(order[left_pos + 1] == static_cast<uint32_t>(raw.right[old_id]));
  }
  forest->root.push_back(base);
  forest->depth.push_back(static_cast<uint32_t>(depth));
  forest->max_depth = std::max(forest->max_depth, depth);
  return Status::Ok();
}

Result<GeneralForest> BuildGeneralForest(const json& booster_model, size_t num_features) {
  const json* trees = internal::Find(booster_model, "trees");
  if (trees == nullptr || !trees->is_array()) {
    return Status::DataLoss("gradient_booster.model.trees is missing");
  }
  if (const json* tree_info = internal::Find(booster_model, "tree_info")) {
    if (!tree_info->is_array() || tree_info->size() != trees->size()) {
      return Status::DataLoss("gradient_booster.model.tree_info does not match trees");
    }
    for (const json& group : *tree_info) {
      if (!group.is_number_integer() || group.get<long long>() != 0) {
        return Status::InvalidArgument("trees for more than one output group (multiclass)");
      }
    }
  }
  if (const json* param = internal::Find(booster_model, "gbtree_model_param")) {
    APX_ASSIGN_OR_RETURN(const long long num_trees,
                         internal::IntField(*param, "num_trees", "gbtree_model_param"));
    if (num_trees != static_cast<long long>(trees->size())) {
      return Status::DataLoss("gbtree_model_param.num_trees is " + std::to_string(num_trees) +
                              " but there are " + std::to_string(trees->size()) + " trees");
    }
  }
  GeneralForest forest;
  for (size_t tree_idx = 0; tree_idx < trees->size(); ++tree_idx) {
    APX_ASSIGN_OR_RETURN(const RawTree raw,
                         ReadRawTree((*trees)[tree_idx], tree_idx, num_features));
    if (forest.threshold.size() + raw.left.size() > (size_t{1} << 31)) {
      return Status::InvalidArgument("model has more than 2^31 nodes");  // node ids are uint32
    }
    APX_RETURN_IF_ERROR(AppendTree(raw, tree_idx, num_features, &forest));
  }
  return forest;
}

// Pads each tree of `general` to a complete tree of depth general.max_depth.
CompleteForest BuildCompleteForest(const GeneralForest& general) {
  CompleteForest complete;
  const int depth = general.max_depth;
  complete.depth = depth;
  const size_t num_internal = (size_t{1} << depth) - 1;
  // Slack so that a 16-entry (or 2 x 16) table load at any level's start stays in the array.
  complete.node_stride = RoundUp16(num_internal) + 32;
  complete.leaf_stride = RoundUp16(num_internal + 1);
  const size_t num_trees = general.root.size();
  complete.feature_word.assign(num_trees * complete.node_stride, 0);
  complete.threshold.assign(num_trees * complete.node_stride, kInf);
  complete.leaf_value.assign(num_trees * complete.leaf_stride, 0.0f);

  struct Item {
    uint32_t node;  // in general
    size_t heap;    // heap index in the complete tree
  };
  for (size_t tree_idx = 0; tree_idx < num_trees; ++tree_idx) {
    int32_t* feature_word = complete.feature_word.data() + tree_idx * complete.node_stride;
    float* threshold = complete.threshold.data() + tree_idx * complete.node_stride;
    float* leaf_value = complete.leaf_value.data() + tree_idx * complete.leaf_stride;
    std::vector<Item> stack = {{general.root[tree_idx], 0}};
    while (!stack.empty()) {
      const Item item = stack.back();
      stack.pop_back();
      const bool is_leaf = general.left[item.node] == item.node;
      if (item.heap >= num_internal) {  // a leaf slot: the walk ends here after `depth` steps
        APX_CHECK(is_leaf);
        leaf_value[item.heap - num_internal] = general.leaf_value[item.node];
        continue;
      }
      if (is_leaf) {
        // A leaf above the last level becomes a padding node (column 0, threshold +inf) whose
        // whole subtree repeats the leaf value, so either direction gives the same answer.
        stack.push_back({item.node, 2 * item.heap + 1});
        stack.push_back({item.node, 2 * item.heap + 2});
        continue;
      }
      feature_word[item.heap] = static_cast<int32_t>(general.feature_word[item.node]);
      threshold[item.heap] = general.threshold[item.node];
      // Heap order keeps the sibling invariant: right (2i+2) = left (2i+1) + 1.
      stack.push_back({general.left[item.node], 2 * item.heap + 1});
      stack.push_back({general.left[item.node] + 1, 2 * item.heap + 2});
    }
  }
  return complete;
}

// ---------------------------------------------------------------------------------------------
// Kernels. Each evaluates every tree for one block of kBlockRows transposed rows and adds the
// leaf values to acc[row] in tree order (the order XGBoost sums in). The kernel and its
// template flags are chosen once per model (layout, feature count) and per block (missing
// values present?), never per row.

struct Layouts {
  const GeneralForest* general;
  const CompleteForest* complete;
  size_t num_trees;
};
using BlockFn = void (*)(const Layouts& layouts, const float* xt, float* acc);

// The portable kernels are scalar on purpose: with AVX-512 enabled GCC turns their row loops
// into gathers, which measured 20-30% slower here (gathers cost ~13 cycles each on this CPU).
#define APX_NO_AUTO_VECTORIZE __attribute__((optimize("no-tree-vectorize")))

// XGBoost: missing -> default child; otherwise x < threshold -> left.
template <bool kHasMissing>
inline uint32_t GoRight(float x, float threshold, uint32_t feature_word) {
  const uint32_t right = x >= threshold;  // false for NaN
  if constexpr (kHasMissing) {
    return right | (static_cast<uint32_t>(std::isnan(x)) & (feature_word >> 31));
  } else {
    return right;
  }
}

template <bool kHasMissing>
APX_NO_AUTO_VECTORIZE void GeneralBlock(const Layouts& layouts, const float* __restrict xt,
                                        float* __restrict acc) {
  const GeneralForest& forest = *layouts.general;
  const uint32_t* __restrict feature_word = forest.feature_word.data();
  const float* __restrict threshold = forest.threshold.data();
  const uint32_t* __restrict left = forest.left.data();
  const float* __restrict leaf_value = forest.leaf_value.data();
  uint32_t node[kBlockRows];
  for (size_t tree_idx = 0; tree_idx < layouts.num_trees; ++tree_idx) {
    std::fill(node, node + kBlockRows, forest.root[tree_idx]);
    for (uint32_t level = 0; level < forest.depth[tree_idx]; ++level) {
      for (size_t row_idx = 0; row_idx < kBlockRows; ++row_idx) {
        const uint32_t n = node[row_idx];
        const uint32_t word = feature_word[n];
        const float x = xt[(word & kColumnMask) + row_idx];
        node[row_idx] = left[n] + GoRight<kHasMissing>(x, threshold[n], word);
      }
    }
    for (size_t row_idx = 0; row_idx < kBlockRows; ++row_idx) {
      acc[row_idx] += leaf_value[node[row_idx]];
    }
  }
}

template <bool kHasMissing>
APX_NO_AUTO_VECTORIZE void CompleteBlock(const Layouts& layouts, const float* __restrict xt,
                                         float* __restrict acc) {
  const CompleteForest& forest = *layouts.complete;
  const int depth = forest.depth;
  const uint32_t first_leaf = (1u << depth) - 1;
  uint32_t node[kBlockRows];
  for (size_t tree_idx = 0; tree_idx < layouts.num_trees; ++tree_idx) {
    const int32_t* __restrict feature_word =
        forest.feature_word.data() + tree_idx * forest.node_stride;
    const float* __restrict threshold = forest.threshold.data() + tree_idx * forest.node_stride;
    const float* __restrict leaf_value = forest.leaf_value.data() + tree_idx * forest.leaf_stride;
    if (depth == 0) {
      for (size_t row_idx = 0; row_idx < kBlockRows; ++row_idx) acc[row_idx] += leaf_value[0];
      continue;
    }
    {  // Level 0: one node for the whole block.
      const uint32_t word = static_cast<uint32_t>(feature_word[0]);
      const float* __restrict column = xt + (word & kColumnMask);
      const float t = threshold[0];
      for (size_t row_idx = 0; row_idx < kBlockRows; ++row_idx) {
        node[row_idx] = 1 + GoRight<kHasMissing>(column[row_idx], t, word);
      }
    }
    for (int level = 1; level < depth; ++level) {
      for (size_t row_idx = 0; row_idx < kBlockRows; ++row_idx) {
        const uint32_t n = node[row_idx];
        const uint32_t word = static_cast<uint32_t>(feature_word[n]);
        const float x = xt[(word & kColumnMask) + row_idx];
        node[row_idx] = 2 * n + 1 + GoRight<kHasMissing>(x, threshold[n], word);
      }
    }
    for (size_t row_idx = 0; row_idx < kBlockRows; ++row_idx) {
      acc[row_idx] += leaf_value[node[row_idx] - first_leaf];
    }
  }
}

#if APX_X86_64
// AVX-512: 16 rows per vector, kBlockRows / 16 vectors in flight per tree level. Instead of
// walking heap indices, each lane keeps its node's index within the current level
// (local' = 2 * local + go_right; heap index = 2^level - 1 + local), so a level's node
// parameters are a small table: up to 16 entries is one in-register permute, up to 64 a pair
// of two-register permutes; only deeper levels gather. Gathers (~13 cycles each on this CPU)
// were the whole cost of a first version; permutes and blends are single instructions.
#define APX_AVX512_TARGET __attribute__((target("avx512f")))

// Gathers with an explicit (zero) source: GCC 12's unmasked forms read an uninitialised
// register and trip -Wmaybe-uninitialized (GCC PR 105593).
APX_AVX512_TARGET inline __m512i GatherInt(__m512i index, const int32_t* base) {
  return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), 0xFFFF, index, base, 4);
}

// table[index[lane]] for a table of 2^log2_size int32 (index < 2^log2_size).
APX_AVX512_TARGET inline __m512i Lookup(const int32_t* table, int log2_size, __m512i index) {
  if (log2_size <= 4) {
    // The masked form with an explicit source avoids GCC 12's PR 105593 warning.
    return _mm512_mask_permutexvar_epi32(_mm512_setzero_si512(), 0xFFFF, index,
                                         _mm512_loadu_si512(table));
  }
  if (log2_size == 5) {
    return _mm512_permutex2var_epi32(_mm512_loadu_si512(table), index,
                                     _mm512_loadu_si512(table + 16));
  }
  if (log2_size == 6) {
    const __m512i low =
        _mm512_permutex2var_epi32(_mm512_loadu_si512(table), index, _mm512_loadu_si512(table + 16));
    const __m512i high = _mm512_permutex2var_epi32(_mm512_loadu_si512(table + 32), index,
                                                   _mm512_loadu_si512(table + 48));
    return _mm512_mask_blend_epi32(_mm512_test_epi32_mask(index, _mm512_set1_epi32(32)), low, high);
  }
  return GatherInt(index, table);
}

APX_AVX512_TARGET inline __m512 LookupFloat(const float* table, int log2_size, __m512i index) {
  return _mm512_castsi512_ps(Lookup(reinterpret_cast<const int32_t*>(table), log2_size, index));
}

// x[lane] = columns[column(word[lane])][lane] as a blend tree over the column's bits
// (2^kColumnBits - 1 blends), for columns held in registers.
template <int kColumnBits>
APX_AVX512_TARGET inline __m512 SelectColumn(const __m512* columns, __m512i word) {
  if constexpr (kColumnBits == 0) {
    return columns[0];
  } else {
    constexpr int kColumns = 1 << kColumnBits;
    __m512 x[kColumns / 2];
    const __mmask16 bit0 = _mm512_test_epi32_mask(word, _mm512_set1_epi32(kBlockRows));
    for (int c = 0; c < kColumns / 2; ++c) {
      x[c] = _mm512_mask_blend_ps(bit0, columns[2 * c], columns[2 * c + 1]);
    }
    for (int b = 1; b < kColumnBits; ++b) {
      const __mmask16 bit =
          _mm512_test_epi32_mask(word, _mm512_set1_epi32(static_cast<int>(kBlockRows) << b));
      for (int c = 0; c < (kColumns >> (b + 1)); ++c) {
        x[c] = _mm512_mask_blend_ps(bit, x[2 * c], x[2 * c + 1]);
      }
    }
    return x[0];
  }
}

// x[lane] = xt_v[column(word[lane]) * kBlockRows + lane] by a gather, for many features.
APX_AVX512_TARGET inline __m512 GatherColumn(const float* xt_v, __m512i word, __m512i lane) {
  const __m512i offset =
      _mm512_add_epi32(_mm512_and_si512(word, _mm512_set1_epi32(kColumnMask)), lane);
  return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF, offset, xt_v, 4);
}

// All kBlockRows / 16 vectors of the block go through each tree level together: their chains
// are independent, which hides the latency of the lookups (measured: one or two vectors at a
// time with the columns pinned in registers was 30-50% slower). kColumnBits >= 0: the block's
// columns are loaded once per block and x is picked by SelectColumn; kColumnBits < 0 (more
// than 16 features): x is gathered.
template <bool kHasMissing, int kColumnBits>
APX_AVX512_TARGET void CompleteBlockAvx512(const Layouts& layouts, const float* __restrict xt,
                                           float* __restrict acc) {
  constexpr int kVectors = kBlockRows / 16;
  constexpr int kColumns = kColumnBits < 0 ? 1 : 1 << kColumnBits;
  const CompleteForest& forest = *layouts.complete;
  const int depth = forest.depth;
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i default_right = _mm512_set1_epi32(static_cast<int32_t>(kDefaultRightBit));

  __m512 columns[kVectors][kColumns];
  __m512 sum[kVectors];
  for (int v = 0; v < kVectors; ++v) {
    if constexpr (kColumnBits >= 0) {
      for (int c = 0; c < kColumns; ++c) {
        columns[v][c] = _mm512_load_ps(xt + c * kBlockRows + 16 * v);
      }
    }
    sum[v] = _mm512_load_ps(acc + 16 * v);
  }
  for (size_t tree_idx = 0; tree_idx < layouts.num_trees; ++tree_idx) {
    const int32_t* feature_word = forest.feature_word.data() + tree_idx * forest.node_stride;
    const float* threshold = forest.threshold.data() + tree_idx * forest.node_stride;
    const float* leaf_value = forest.leaf_value.data() + tree_idx * forest.leaf_stride;
    __m512i local[kVectors];  // node index within the current level
    if (depth > 0) {          // Level 0: one node; its column is a plain load.
      const uint32_t word = static_cast<uint32_t>(feature_word[0]);
      const float* column = xt + (word & kColumnMask);
      const __m512 t = _mm512_set1_ps(threshold[0]);
      for (int v = 0; v < kVectors; ++v) {
        const __m512 x = _mm512_load_ps(column + 16 * v);
        __mmask16 right = _mm512_cmp_ps_mask(x, t, _CMP_GE_OQ);
        if constexpr (kHasMissing) {
          if (word & kDefaultRightBit) right |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        }
        local[v] = _mm512_maskz_mov_epi32(right, one);
      }
    } else {
      for (int v = 0; v < kVectors; ++v) local[v] = _mm512_setzero_si512();
    }
    for (int level = 1; level < depth; ++level) {
      const int32_t* level_words = feature_word + (1 << level) - 1;
      const float* level_thresholds = threshold + (1 << level) - 1;
      for (int v = 0; v < kVectors; ++v) {
        const __m512i word = Lookup(level_words, level, local[v]);
        const __m512 t = LookupFloat(level_thresholds, level, local[v]);
        __m512 x;
        if constexpr (kColumnBits < 0) {
          x = GatherColumn(xt + 16 * v, word, lane);
        } else {
          x = SelectColumn<kColumnBits>(columns[v], word);
        }
        __mmask16 right = _mm512_cmp_ps_mask(x, t, _CMP_GE_OQ);
        if constexpr (kHasMissing) {
          right |=
              _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q) & _mm512_test_epi32_mask(word, default_right);
        }
        const __m512i twice = _mm512_add_epi32(local[v], local[v]);
        local[v] = _mm512_mask_add_epi32(twice, right, twice, one);
      }
    }
    for (int v = 0; v < kVectors; ++v) {
      sum[v] = _mm512_add_ps(sum[v], LookupFloat(leaf_value, depth, local[v]));
    }
  }
  for (int v = 0; v < kVectors; ++v) _mm512_store_ps(acc + 16 * v, sum[v]);
}

// Columns the AVX-512 blend tree must be able to address: features 0..n-1 -> ceil(log2 n)
// bits; beyond kMaxBlendColumnBits the kernel gathers instead (a gather beats 31+ blends).
constexpr int kMaxBlendColumnBits = 4;
int ColumnBits(size_t num_features) {
  int bits = 0;
  while ((size_t{1} << bits) < num_features) ++bits;
  return bits;
}

template <bool kHasMissing>
BlockFn Avx512BlockFn(int column_bits) {
  switch (column_bits) {
    case 0:
      return &CompleteBlockAvx512<kHasMissing, 0>;
    case 1:
      return &CompleteBlockAvx512<kHasMissing, 1>;
    case 2:
      return &CompleteBlockAvx512<kHasMissing, 2>;
    case 3:
      return &CompleteBlockAvx512<kHasMissing, 3>;
    case 4:
      return &CompleteBlockAvx512<kHasMissing, 4>;
    default:
      return &CompleteBlockAvx512<kHasMissing, -1>;
  }
}
static_assert(kMaxBlendColumnBits == 4, "Avx512BlockFn instantiates blend trees up to 4 bits");
#endif  // APX_X86_64

// ---------------------------------------------------------------------------------------------
// The helper thread for num_threads = 2: one persistent thread per model that joins a call
// already in progress. The caller never waits for it to wake up: both take blocks from a
// shared counter, and at the end the caller spins only while the helper finishes the block it
// holds (~5 us). Waking a sleeping thread costs ~70 us on the 2-vCPU VM this was measured on
// (condition-variable round trip), more than a whole 896-row batch, so handing the helper a
// fixed half was slower than one thread; with sharing, a late helper costs nothing.

class HelperThread {
 public:
  HelperThread() : thread_([this] { Run(); }) {}
  HelperThread(const HelperThread&) = delete;
  HelperThread& operator=(const HelperThread&) = delete;
  ~HelperThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  // Offers task(arg) to the helper and returns true, or returns false if another caller holds
  // the helper. After true, the caller runs task(arg) itself too (task must share its work
  // through `arg`, e.g. an atomic counter) and then calls Finish() before `arg` goes away.
  bool Offer(void (*task)(void*), void* arg) {
    std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
    if (!lock.owns_lock() || owned_) return false;
    owned_ = true;
    task_ = task;
    arg_ = arg;
    lock.unlock();
    wake_.notify_one();
    return true;
  }

  // Withdraws the offer and waits for the helper to leave the task if it joined.
  void Finish() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      task_ = nullptr;  // a helper that wakes from now on finds nothing to do
      owned_ = false;
    }
    while (in_task_.load(std::memory_order_acquire)) {
#if APX_X86_64
      _mm_pause();
#else
      std::this_thread::yield();
#endif
    }
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      wake_.wait(lock, [this] { return stop_ || task_ != nullptr; });
      if (stop_) return;
      void (*task)(void*) = task_;
      void* arg = arg_;
      task_ = nullptr;                                  // join each offer at most once
      in_task_.store(true, std::memory_order_relaxed);  // published by unlocking mu_
      lock.unlock();
      task(arg);
      in_task_.store(false, std::memory_order_release);
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable wake_;
  bool owned_ = false;                // GUARDED_BY(mu_): a caller holds the helper
  bool stop_ = false;                 // GUARDED_BY(mu_)
  void (*task_)(void*) = nullptr;     // GUARDED_BY(mu_): offered and not yet joined
  void* arg_ = nullptr;               // GUARDED_BY(mu_)
  std::atomic<bool> in_task_{false};  // the helper is inside an offered task
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------

class FlatForest final : public Model {
 public:
  FlatForest(Task task, internal::LearnerInfo info, GeneralForest general, CompleteForest complete,
             ForestKernel kernel, int num_threads, size_t min_parallel_work)
      : task_(task),
        link_(info.link),
        base_margin_(info.base_margin),
        num_features_(info.num_features),
        objective_(std::move(info.objective)),
        general_(std::move(general)),
        complete_(std::move(complete)),
        kernel_(kernel),
        min_parallel_work_(min_parallel_work),
        helper_(num_threads > 1 ? std::make_unique<HelperThread>() : nullptr) {
    // Settle every per-model choice now: the block function for blocks without and with
    // missing values, and how many transposed columns the kernel may read (features, the
    // -inf sentinel column, and whatever the AVX-512 blend tree addresses).
    num_columns_ = num_features_ + 1;
    switch (kernel_) {
      case ForestKernel::kGeneral:
        block_fn_[0] = &GeneralBlock<false>;
        block_fn_[1] = &GeneralBlock<true>;
        break;
      case ForestKernel::kComplete:
        block_fn_[0] = &CompleteBlock<false>;
        block_fn_[1] = &CompleteBlock<true>;
        break;
      case ForestKernel::kCompleteAvx512:
      case ForestKernel::kAuto: {  // kAuto is resolved before construction
#if APX_X86_64
        const int bits = ColumnBits(num_features_);
        block_fn_[0] = Avx512BlockFn<false>(bits);
        block_fn_[1] = Avx512BlockFn<true>(bits);
        if (bits <= kMaxBlendColumnBits) {
          num_columns_ = std::max(num_columns_, size_t{1} << bits);
        }
#else
        APX_CHECK(false);  // CompileFlatForest refuses the kernel without x86-64
#endif
        break;
      }
    }
  }

  Task task() const override { return task_; }
  size_t num_features() const override { return num_features_; }
  std::string Describe() const override;
  std::string_view family() const override { return "trees"; }
  Status Predict(std::span<const float> rows, size_t n_rows, std::span<float> out) const override;

 private:
  // One Predict call shared between the caller and the helper thread.
  struct SharedCall {
    const FlatForest* forest;
    const float* rows;
    float* out;
    size_t n_rows;
    size_t n_blocks;
    std::atomic<size_t> next_block{0};
  };
  // Predicts blocks of `call` until none is left; run by the caller and the helper.
  static void PredictSharedBlocks(void* call) {
    SharedCall& c = *static_cast<SharedCall*>(call);
    for (size_t block = c.next_block.fetch_add(1, std::memory_order_relaxed); block < c.n_blocks;
         block = c.next_block.fetch_add(1, std::memory_order_relaxed)) {
      const size_t begin_row = block * kBlockRows;
      c.forest->PredictRange(c.rows, begin_row, std::min(c.n_rows, begin_row + kBlockRows), c.out);
    }
  }
  // Predicts rows [begin_row, end_row) of `rows` into out[begin_row, end_row).
  void PredictRange(const float* rows, size_t begin_row, size_t end_row, float* out) const;
  size_t num_trees() const { return general_.root.size(); }

  Task task_;
  Link link_;
  float base_margin_;
  size_t num_features_;
  std::string objective_;
  GeneralForest general_;
  CompleteForest complete_;  // empty unless kernel_ is a complete kernel
  ForestKernel kernel_;
  BlockFn block_fn_[2] = {nullptr, nullptr};  // [has missing values]
  size_t num_columns_ = 0;                    // columns of the transposed block
  size_t min_parallel_work_;                  // rows x trees from which the helper joins
  std::unique_ptr<HelperThread> helper_;      // null for num_threads == 1
};

std::string FlatForest::Describe() const {
  const char* kernel = kernel_ == ForestKernel::kGeneral    ? "general"
                       : kernel_ == ForestKernel::kComplete ? "complete"
                                                            : "complete-avx512";
  return "flat forest (" + objective_ + "): " + std::to_string(num_trees()) +
         " trees, depth <= " + std::to_string(general_.max_depth) + ", " +
         std::to_string(num_features_) + " features, " + kernel + " kernel" +
         (helper_ ? ", 2 threads" : "");
}

Status FlatForest::Predict(std::span<const float> rows, size_t n_rows, std::span<float> out) const {
  APX_RETURN_IF_ERROR(CheckPredictArgs(rows, n_rows, num_features_, out));
  const size_t n_blocks = (n_rows + kBlockRows - 1) / kBlockRows;
  if (helper_ != nullptr && n_blocks >= 2 && n_rows * num_trees() >= min_parallel_work_) {
    SharedCall call{this, rows.data(), out.data(), n_rows, n_blocks};
    if (helper_->Offer(&PredictSharedBlocks, &call)) {
      PredictSharedBlocks(&call);
      helper_->Finish();
      return Status::Ok();
    }
  }
  PredictRange(rows.data(), 0, n_rows, out.data());
  return Status::Ok();
}

void FlatForest::PredictRange(const float* rows, size_t begin_row, size_t end_row,
                              float* out) const {
  // Per-thread scratch, reused across calls: the transposed block, 64-byte aligned.
  thread_local std::vector<float> scratch;
  const size_t scratch_size = num_columns_ * kBlockRows + 16;
  if (scratch.size() < scratch_size) scratch.resize(scratch_size);
  float* __restrict xt = scratch.data();
  xt += (16 - reinterpret_cast<uintptr_t>(xt) / sizeof(float) % 16) % 16;
  // Unused columns read 0; the sentinel column (general layout) reads -inf.
  std::fill(xt + num_features_ * kBlockRows, xt + num_columns_ * kBlockRows, 0.0f);
  std::fill(xt + num_features_ * kBlockRows, xt + (num_features_ + 1) * kBlockRows, -kInf);
  alignas(64) float acc[kBlockRows];
  const Layouts layouts{&general_, &complete_, num_trees()};

  for (size_t block_begin = begin_row; block_begin < end_row; block_begin += kBlockRows) {
    const size_t block_rows = std::min(kBlockRows, end_row - block_begin);
    const float* block = rows + block_begin * num_features_;
    bool has_missing = false;
    for (size_t col_idx = 0; col_idx < num_features_; ++col_idx) {
      float* __restrict column = xt + col_idx * kBlockRows;
      for (size_t row_idx = 0; row_idx < block_rows; ++row_idx) {
        const float x = block[row_idx * num_features_ + col_idx];
        column[row_idx] = x;
        has_missing |= std::isnan(x);
      }
      // Rows past the end of a short last block are evaluated and dropped.
      std::fill(column + block_rows, column + kBlockRows, 0.0f);
    }
    std::fill(acc, acc + kBlockRows, base_margin_);
    block_fn_[has_missing](layouts, xt, acc);
    float* block_out = out + block_begin;
    if (link_ == Link::kSigmoid) {
      for (size_t row_idx = 0; row_idx < block_rows; ++row_idx) {
        block_out[row_idx] = internal::Sigmoid(acc[row_idx]);
      }
    } else {
      std::copy(acc, acc + block_rows, block_out);
    }
  }
}

}  // namespace

bool CpuHasAvx512() {
#if APX_X86_64
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
#else
  return false;
#endif
}

Result<std::unique_ptr<Model>> CompileFlatForest(const std::string& xgboost_json, Task task,
                                                 const FlatForestOptions& options) {
  if (options.num_threads < 1 || options.num_threads > 2) {
    return Status::InvalidArgument("FlatForestOptions.num_threads must be 1 or 2, got " +
                                   std::to_string(options.num_threads));
  }
  APX_ASSIGN_OR_RETURN(const json root, internal::ParseJson(xgboost_json, "model"));
  APX_ASSIGN_OR_RETURN(internal::LearnerInfo info, internal::ReadLearner(root, task));
  if (info.booster != "gbtree") {
    return Status::InvalidArgument("flat forest needs a gbtree booster, got '" + info.booster +
                                   "'");
  }
  if (info.booster_model == nullptr) {
    return Status::DataLoss("missing learner.gradient_booster.model");
  }
  if (info.num_features > kMaxFeatures) {
    return Status::InvalidArgument("too many features for the flat forest: " +
                                   std::to_string(info.num_features));
  }
  APX_ASSIGN_OR_RETURN(GeneralForest general,
                       BuildGeneralForest(*info.booster_model, info.num_features));

  ForestKernel kernel = options.kernel;
  const bool complete_ok = general.max_depth <= kMaxCompleteDepth;
  if (kernel == ForestKernel::kAuto) {
    kernel = !complete_ok     ? ForestKernel::kGeneral
             : CpuHasAvx512() ? ForestKernel::kCompleteAvx512
                              : ForestKernel::kComplete;
  }
  if (kernel == ForestKernel::kCompleteAvx512 && !CpuHasAvx512()) {
    return Status::InvalidArgument("the AVX-512 kernel needs a CPU with AVX-512F");
  }
  CompleteForest complete;
  if (kernel == ForestKernel::kComplete || kernel == ForestKernel::kCompleteAvx512) {
    if (!complete_ok) {
      return Status::InvalidArgument("trees of depth " + std::to_string(general.max_depth) +
                                     " are too deep for a complete kernel (max " +
                                     std::to_string(kMaxCompleteDepth) + ")");
    }
    complete = BuildCompleteForest(general);
  }
  return std::unique_ptr<Model>(
      std::make_unique<FlatForest>(task, std::move(info), std::move(general), std::move(complete),
                                   kernel, options.num_threads, options.min_parallel_work));
}

}  // namespace apx::model
