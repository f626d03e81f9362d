// model/mlp.h
//
// A multilayer perceptron (the published Bearing-Imbalance pipeline's sklearn
// MLPClassifier(hidden_layer_sizes=(100, 100), learning_rate_init=0.01, max_iter=1000)):
// training with Adam on mini-batches, apxserve's own JSON format, and a batched Eigen
// evaluator.
//
// The network: z = (x − input_mean) / input_scale, then per layer h' = h · W + b (W is
// fan_in x fan_out, sklearn's coefs_ layout), ReLU after every hidden layer, and one output:
// identity for regression, sigmoid for binary (the probability of class 1).
//
// Missing values: a NaN input is replaced by the training mean of its feature (z = 0), in
// training and in Predict alike. Infinite inputs are not special (they propagate, and may give
// NaN through a zero weight).
//
// Predict runs blocks of up to 256 rows through Eigen's matrix products in float. A row's
// output does not depend on the other rows' values, but may differ in the last bits with the
// batch size and the row's place in it (a one-row product is summed in another order than a
// blocked one; about 1e-7 relative). Speed: ~0.2 µs per row for 8-100-100-1 in batches of
// 1,024 rows on one AVX-512 core, ~0.5 µs for a single row (bench/model_bench).
//
// JSON (LoadModel in model/loader.h reads it):
//   {"apxserve_mlp": {"version": 1, "task": "binary",
//     "input_mean": [...], "input_scale": [...],   // one per feature; scale > 0
//     "layers": [{"rows": R, "cols": C, "weights": [R*C values, row-major], "bias": [C]}, ...]}}
// The first layer has rows = number of features, each next layer rows = the previous cols,
// the last layer cols = 1.
//
// Thread safety: TrainMlp may run concurrently on different data; the compiled model is
// immutable and Predict may be called concurrently (its scratch space is per thread).
#ifndef APX_MODEL_MLP_H_
#define APX_MODEL_MLP_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/model.h"

namespace apx::model {

struct MlpOptions {
  // Widths of the hidden layers (each >= 1; empty gives a linear / logistic model).
  std::vector<int> hidden = {100, 100};
  // Adam step size (sklearn learning_rate_init); beta1 0.9, beta2 0.999, eps 1e-8 as sklearn.
  double learning_rate = 0.01;
  // Passes over the data at most (sklearn max_iter).
  int max_epochs = 1000;
  // Rows per Adam step; clamped to the number of rows (sklearn batch_size="auto" is 200).
  int batch_size = 200;
  // L2 penalty on the weights (sklearn alpha): adds 0.5 · l2 · Σ W² / batch rows to the loss.
  double l2 = 1e-4;
  // Weight initialisation and per-epoch shuffling. Same seed, data and machine → same model.
  uint64_t seed = 1;
  // Early stop, as sklearn's n_iter_no_change / tol: stop once the epoch's mean training loss
  // has failed to improve on the best by at least `tol` for more than `patience` epochs in a
  // row. patience <= 0 never stops early. For regression the loss is that of the
  // standardised label (see TrainMlp), so `tol` does not depend on the label's units.
  int patience = 10;
  double tol = 1e-4;
  // Called after every epoch with the 1-based epoch number and its mean training loss
  // (including the L2 term). Optional; e.g. progress output.
  std::function<void(int epoch, double loss)> on_epoch;
};

// Trains an MLP on X (n_rows x n_features, row-major; NaN = missing) and labels y, and
// returns its JSON (see above). Inputs are standardised with the mean and standard deviation
// of their non-missing training values (a constant feature gets scale 1). Regression trains
// on the standardised label (squared loss / 2) and folds the label's mean and scale back into
// the output layer; binary trains with log loss on a sigmoid output, from Glorot-uniform
// weights (sklearn's initialisation).
// Errors: InvalidArgument for empty data, X or y smaller than the sizes, infinite features,
// non-finite labels, binary labels outside {0, 1}, or bad options.
Result<std::string> TrainMlp(std::span<const float> X, size_t n_rows, size_t n_features,
                             std::span<const float> y, Task task, const MlpOptions& options);

// Builds the evaluator from apxserve's MLP JSON. Describe() gives e.g.
// "mlp: 8-100-100-1, relu, sigmoid output".
// Errors: DataLoss naming the field when the JSON is malformed (missing fields, wrong shapes,
// non-finite numbers, non-positive scales); InvalidArgument when the model's task is not `task`.
Result<std::unique_ptr<Model>> CompileMlpModel(const std::string& json, Task task);

}  // namespace apx::model

#endif  // APX_MODEL_MLP_H_
