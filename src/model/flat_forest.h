// model/flat_forest.h
//
// A compiled evaluator for XGBoost tree ensembles (booster gbtree, including random-forest
// mode, i.e. num_parallel_tree > 1), built from the XGBoost JSON model and checked to give the
// same outputs as XGBoost's own predict (model/flat_forest_test.cc).
//
// What "the same" means, following XGBoost 1.7's CPU predictor:
//   * a split sends x left iff x < threshold (float compare, threshold rounded to float as
//     XGBoost reads it); NaN (missing) goes to the node's default child; +-inf compare as
//     ordinary values;
//   * margin = base_margin + leaf(tree 0) + leaf(tree 1) + ..., accumulated in float in tree
//     order, where base_margin is learner_model_param.base_score moved to margin space by the
//     objective (logit(base_score) for binary:logistic / reg:logistic, base_score otherwise);
//   * in random-forest mode every parallel tree is just another tree in the sum: XGBoost
//     divides the learning rate by num_parallel_tree, so the stored leaves are already scaled
//     (10 parallel trees have leaves ~1/10 as large as one) and nothing is averaged;
//   * binary output is XGBoost 1.7's float sigmoid, 1 / (1 + exp(min(-margin, 88.7))).
//
// Layout: trees become flat structure-of-arrays (feature, threshold, left child, default
// direction, leaf value) with siblings adjacent, so next = left + !go_left (checked while
// building). Trees no deeper than kMaxCompleteDepth are also padded to complete binary trees
// in heap order (left = 2i + 1), which makes every row take exactly `depth` steps; rows are
// evaluated in blocks of kBlockRows, one tree level at a time for the whole block, so that
// independent rows hide each other's load latency. The AVX-512 kernel does 16 rows per
// instruction and keeps each level's node table (up to 64 nodes) in registers, so its only
// memory reads per level are the block's feature columns. bench/model_bench.cc measures it
// at ~0.75 ns per row per depth-6 tree against ~12 ns for XGBoost's own predict.
//
// Thread safety: the compiled model is immutable; Predict may be called concurrently.
#ifndef APX_MODEL_FLAT_FOREST_H_
#define APX_MODEL_FLAT_FOREST_H_

#include <memory>
#include <string>

#include "common/status.h"
#include "model/model.h"

namespace apx::model {

// Trees deeper than this use the general (non-padded) layout; padding costs 2^depth nodes.
inline constexpr int kMaxCompleteDepth = 10;
// Rows per evaluation block.
inline constexpr size_t kBlockRows = 64;
static_assert(kBlockRows % 16 == 0, "the AVX-512 kernel handles 16 rows per vector");

enum class ForestKernel {
  kAuto,            // kCompleteAvx512 if the CPU has it and depth allows, else kComplete,
                    // else kGeneral
  kGeneral,         // any depth: walks each tree's own nodes, level by level per block
  kComplete,        // portable; depth <= kMaxCompleteDepth
  kCompleteAvx512,  // AVX-512F, 16 rows per vector, node tables in registers (permutes);
                    // depth <= kMaxCompleteDepth
};

// Work (rows x trees) from which Predict offers blocks to the helper thread. Waking a sleeping
// thread took ~70 us on a 2-vCPU VM, about 96K row-trees of AVX-512 work, so the helper only
// pays off for about twice that; measured with a free second core: 3000 rows x 100 trees went
// from 225 to 130 us, 896 rows gained nothing (and lost nothing: the caller never waits for
// the helper to wake).
inline constexpr size_t kParallelWork = 192 * 1024;

struct FlatForestOptions {
  // Which evaluator to use. Anything but kAuto is for tests and benchmarks.
  ForestKernel kernel = ForestKernel::kAuto;
  // 2: the model owns one helper thread that joins Predict calls of at least kParallelWork
  // rows x trees, sharing their blocks with the caller. 1 (default): Predict runs only on the
  // calling thread, the right choice when callers already run in parallel (server workers).
  int num_threads = 1;
  // With num_threads = 2: the work (rows x trees) from which a call is shared with the helper.
  size_t min_parallel_work = kParallelWork;
};

// Compiles an XGBoost JSON model (gbtree booster, numerical splits, one output) for `task`.
// Errors: DataLoss if the text is not a well-formed XGBoost JSON model (message names the
// tree and field); InvalidArgument for an unsupported model (gblinear or dart booster,
// categorical splits, multiclass, an objective that does not fit `task`) or an unavailable
// kernel (kCompleteAvx512 on a CPU without AVX-512F, a complete kernel for trees deeper than
// kMaxCompleteDepth) or num_threads outside [1, 2].
Result<std::unique_ptr<Model>> CompileFlatForest(const std::string& xgboost_json, Task task,
                                                 const FlatForestOptions& options = {});

// True when this CPU can run ForestKernel::kCompleteAvx512.
bool CpuHasAvx512();

}  // namespace apx::model

#endif  // APX_MODEL_FLAT_FOREST_H_
