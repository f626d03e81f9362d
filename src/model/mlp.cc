#include "model/mlp.h"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "model/xgboost_json_internal.h"

namespace apx::model {
namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowVec = Eigen::Matrix<float, 1, Eigen::Dynamic>;

constexpr char kKey[] = "apxserve_mlp";
constexpr int kVersion = 1;
// Adam's constants, as sklearn's AdamOptimizer (and Kingma & Ba's paper).
constexpr double kBeta1 = 0.9;
constexpr double kBeta2 = 0.999;
constexpr double kAdamEps = 1e-8;
// Predict works through the batch this many rows at a time: the activations of a block
// (256 x 100 floats = 100 KiB per buffer) stay in L2, and the products are still large enough
// for Eigen's blocked GEMM.
constexpr size_t kBlockRows = 256;

struct Layer {
  RowMat w;  // fan_in x fan_out: h' = h · w + b
  RowVec b;  // 1 x fan_out
};

float Sigmoid(float margin) { return 1.0f / (1.0f + std::exp(-margin)); }

// The standardised input of one value: NaN (missing) becomes the training mean, i.e. 0.
inline float Standardise(float x, float mean, float inv_scale) {
  return std::isnan(x) ? 0.0f : (x - mean) * inv_scale;
}

// "8-100-100-1"
std::string Shape(size_t n_features, const std::vector<Layer>& layers) {
  std::string s = std::to_string(n_features);
  for (const Layer& layer : layers) s += "-" + std::to_string(layer.w.cols());
  return s;
}

class MlpModel final : public Model {
 public:
  MlpModel(Task task, std::vector<float> mean, std::vector<float> scale, std::vector<Layer> layers)
      : task_(task), mean_(std::move(mean)), layers_(std::move(layers)) {
    inv_scale_.reserve(scale.size());
    for (float s : scale) inv_scale_.push_back(1.0f / s);
    max_width_ = mean_.size();
    for (const Layer& layer : layers_) max_width_ = std::max(max_width_, size_t(layer.w.cols()));
  }

  Task task() const override { return task_; }
  size_t num_features() const override { return mean_.size(); }

  std::string_view family() const override { return "mlp"; }
  std::string Describe() const override {
    return "mlp: " + Shape(mean_.size(), layers_) + (layers_.size() > 1 ? ", relu" : "") +
           (task_ == Task::kBinary ? ", sigmoid output" : "");
  }

  Status Predict(std::span<const float> rows, size_t n_rows, std::span<float> out) const override {
    const size_t n_features = mean_.size();
    APX_RETURN_IF_ERROR(CheckPredictArgs(rows, n_rows, n_features, out));
    // Two ping-pong activation buffers per thread, grown once: no allocation per call or row.
    thread_local std::vector<float> buffer_a, buffer_b;
    const size_t need = kBlockRows * max_width_;
    if (buffer_a.size() < need) {
      buffer_a.resize(need);
      buffer_b.resize(need);
    }
    const Eigen::Index d = static_cast<Eigen::Index>(n_features);
    for (size_t start = 0; start < n_rows; start += kBlockRows) {
      const size_t block_rows = std::min(kBlockRows, n_rows - start);
      const Eigen::Index m = static_cast<Eigen::Index>(block_rows);
      float* cur = buffer_a.data();
      float* next = buffer_b.data();
      const float* x = rows.data() + start * n_features;
      for (size_t row_idx = 0; row_idx < block_rows; ++row_idx) {
        for (size_t col_idx = 0; col_idx < n_features; ++col_idx) {
          const size_t i = row_idx * n_features + col_idx;
          cur[i] = Standardise(x[i], mean_[col_idx], inv_scale_[col_idx]);
        }
      }
      Eigen::Index width = d;
      for (size_t layer_idx = 0; layer_idx < layers_.size(); ++layer_idx) {
        const Layer& layer = layers_[layer_idx];
        Eigen::Map<const RowMat> in(cur, m, width);
        Eigen::Map<RowMat> act(next, m, layer.w.cols());
        act.noalias() = in * layer.w;
        act.rowwise() += layer.b;
        if (layer_idx + 1 < layers_.size()) act = act.cwiseMax(0.0f);
        std::swap(cur, next);
        width = layer.w.cols();
      }
      // `cur` now holds the m x 1 output margins.
      for (size_t row_idx = 0; row_idx < block_rows; ++row_idx) {
        out[start + row_idx] = task_ == Task::kBinary ? Sigmoid(cur[row_idx]) : cur[row_idx];
      }
    }
    return Status::Ok();
  }

 private:
  Task task_;
  std::vector<float> mean_;
  std::vector<float> inv_scale_;
  std::vector<Layer> layers_;
  size_t max_width_ = 0;
};

// ---- Training --------------------------------------------------------------------------------

// Portable draws (std:: distributions differ between standard libraries).
double Uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

void Shuffle(std::vector<Eigen::Index>& order, std::mt19937_64& rng) {
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
}

Status CheckOptions(const MlpOptions& o) {
  for (int width : o.hidden) {
    if (width < 1) return Status::InvalidArgument("mlp: hidden layer widths must be >= 1");
  }
  if (!(o.learning_rate > 0) || !std::isfinite(o.learning_rate)) {
    return Status::InvalidArgument("mlp: learning_rate must be > 0");
  }
  if (o.max_epochs < 1) return Status::InvalidArgument("mlp: max_epochs must be >= 1");
  if (o.batch_size < 1) return Status::InvalidArgument("mlp: batch_size must be >= 1");
  if (!(o.l2 >= 0) || !std::isfinite(o.l2)) return Status::InvalidArgument("mlp: l2 must be >= 0");
  if (!(o.tol >= 0)) return Status::InvalidArgument("mlp: tol must be >= 0");
  return Status::Ok();
}

// Per-feature mean and standard deviation of the non-missing values (computed in double);
// a constant or all-missing feature gets scale 1. InvalidArgument for an infinite value.
struct InputScaling {
  std::vector<float> mean, scale, inv_scale;
};

Result<InputScaling> FitInputScaling(std::span<const float> X, size_t n_rows, size_t n_features) {
  std::vector<double> sum(n_features, 0.0), sum_sq(n_features, 0.0);
  std::vector<size_t> count(n_features, 0);
  for (size_t r = 0; r < n_rows; ++r) {
    for (size_t c = 0; c < n_features; ++c) {
      const float v = X[r * n_features + c];
      if (std::isnan(v)) continue;
      if (std::isinf(v)) {
        return Status::InvalidArgument("mlp: feature " + std::to_string(c) + " of row " +
                                       std::to_string(r) + " is infinite");
      }
      sum[c] += v;
      ++count[c];
    }
  }
  InputScaling s;
  s.mean.resize(n_features);
  s.scale.resize(n_features);
  s.inv_scale.resize(n_features);
  for (size_t c = 0; c < n_features; ++c) {
    s.mean[c] = count[c] > 0 ? static_cast<float>(sum[c] / static_cast<double>(count[c])) : 0.0f;
  }
  for (size_t r = 0; r < n_rows; ++r) {
    for (size_t c = 0; c < n_features; ++c) {
      const double v = X[r * n_features + c];
      if (!std::isnan(v)) sum_sq[c] += (v - s.mean[c]) * (v - s.mean[c]);
    }
  }
  for (size_t c = 0; c < n_features; ++c) {
    const double sd = count[c] > 0 ? std::sqrt(sum_sq[c] / static_cast<double>(count[c])) : 0.0;
    s.scale[c] = sd > 0 && std::isfinite(static_cast<float>(sd)) ? static_cast<float>(sd) : 1.0f;
    s.inv_scale[c] = 1.0f / s.scale[c];
  }
  return s;
}

// Glorot-uniform weights and biases, bound sqrt(6 / (fan_in + fan_out)), as sklearn does for
// ReLU networks. widths = {inputs, hidden..., 1}.
std::vector<Layer> GlorotLayers(const std::vector<Eigen::Index>& widths, std::mt19937_64& rng) {
  std::vector<Layer> layers(widths.size() - 1);
  for (size_t l = 0; l < layers.size(); ++l) {
    const double bound = std::sqrt(6.0 / static_cast<double>(widths[l] + widths[l + 1]));
    auto draw = [&] { return static_cast<float>(bound * (2.0 * Uniform01(rng) - 1.0)); };
    layers[l].w.resize(widths[l], widths[l + 1]);
    layers[l].b.resize(widths[l + 1]);
    for (Eigen::Index i = 0; i < layers[l].w.size(); ++i) layers[l].w.data()[i] = draw();
    for (Eigen::Index i = 0; i < layers[l].b.size(); ++i) layers[l].b(i) = draw();
  }
  return layers;
}

template <typename Matrix>
std::vector<float> Flatten(const Matrix& m) {
  return {m.data(), m.data() + m.size()};
}

}  // namespace

Result<std::string> TrainMlp(std::span<const float> X, size_t n_rows, size_t n_features,
                             std::span<const float> y, Task task, const MlpOptions& options) {
  if (n_rows == 0 || n_features == 0) {
    return Status::InvalidArgument("mlp: no training data (" + std::to_string(n_rows) +
                                   " rows, " + std::to_string(n_features) + " features)");
  }
  if (X.size() < n_rows * n_features || y.size() < n_rows) {
    return Status::InvalidArgument("mlp: X or y is smaller than n_rows x n_features");
  }
  APX_RETURN_IF_ERROR(CheckOptions(options));
  for (size_t r = 0; r < n_rows; ++r) {
    if (!std::isfinite(y[r])) {
      return Status::InvalidArgument("mlp: label of row " + std::to_string(r) + " is not finite");
    }
    if (task == Task::kBinary && y[r] != 0.0f && y[r] != 1.0f) {
      return Status::InvalidArgument("mlp: binary label of row " + std::to_string(r) + " is " +
                                     std::to_string(y[r]) + ", expected 0 or 1");
    }
  }

  APX_ASSIGN_OR_RETURN(const InputScaling scaling, FitInputScaling(X, n_rows, n_features));
  const std::vector<float>& mean = scaling.mean;
  const std::vector<float>& inv_scale = scaling.inv_scale;
  const Eigen::Index n = static_cast<Eigen::Index>(n_rows);
  const Eigen::Index d = static_cast<Eigen::Index>(n_features);
  RowMat Z(n, d);
  for (Eigen::Index r = 0; r < n; ++r) {
    for (Eigen::Index c = 0; c < d; ++c) {
      Z(r, c) = Standardise(X[size_t(r) * n_features + size_t(c)], mean[size_t(c)],
                            inv_scale[size_t(c)]);
    }
  }
  // Targets: the label itself (binary), or the standardised label (regression).
  double y_mean = 0, y_scale = 1;
  if (task == Task::kRegression) {
    double s = 0, ss = 0;
    for (size_t r = 0; r < n_rows; ++r) s += y[r];
    y_mean = s / static_cast<double>(n_rows);
    for (size_t r = 0; r < n_rows; ++r) ss += (y[r] - y_mean) * (y[r] - y_mean);
    const double sd = std::sqrt(ss / static_cast<double>(n_rows));
    y_scale = sd > 0 ? sd : 1.0;
  }
  Eigen::VectorXf target(n);
  for (Eigen::Index r = 0; r < n; ++r) {
    target(r) = static_cast<float>((y[size_t(r)] - y_mean) / y_scale);
  }

  std::mt19937_64 rng(options.seed);
  std::vector<Eigen::Index> widths = {d};
  for (int h : options.hidden) widths.push_back(h);
  widths.push_back(1);
  const size_t n_layers = widths.size() - 1;
  std::vector<Layer> layers = GlorotLayers(widths, rng);
  // Adam moments.
  std::vector<RowMat> m_w(n_layers), v_w(n_layers);
  std::vector<RowVec> m_b(n_layers), v_b(n_layers);
  for (size_t l = 0; l < n_layers; ++l) {
    m_w[l] = v_w[l] = RowMat::Zero(widths[l], widths[l + 1]);
    m_b[l] = v_b[l] = RowVec::Zero(widths[l + 1]);
  }

  const Eigen::Index batch = std::min<Eigen::Index>(options.batch_size, n);
  std::vector<RowMat> acts(n_layers + 1);  // acts[0] = input batch, acts[l + 1] = layer l output
  RowMat delta, delta_prev, grad_w;
  RowVec grad_b;
  std::vector<Eigen::Index> order(static_cast<size_t>(n));
  for (Eigen::Index i = 0; i < n; ++i) order[size_t(i)] = i;
  double best_loss = std::numeric_limits<double>::infinity();
  int no_improvement = 0;
  long long step = 0;
  for (int epoch = 1; epoch <= options.max_epochs; ++epoch) {
    Shuffle(order, rng);
    double loss_sum = 0;
    for (Eigen::Index start = 0; start < n; start += batch) {
      const Eigen::Index bs = std::min(batch, n - start);
      const float inv_bs = 1.0f / static_cast<float>(bs);
      acts[0].resize(bs, d);
      for (Eigen::Index i = 0; i < bs; ++i) acts[0].row(i) = Z.row(order[size_t(start + i)]);
      // Forward.
      for (size_t l = 0; l < n_layers; ++l) {
        acts[l + 1].noalias() = acts[l] * layers[l].w;
        acts[l + 1].rowwise() += layers[l].b;
        if (l + 1 < n_layers) acts[l + 1] = acts[l + 1].cwiseMax(0.0f);
      }
      // Loss and output delta: (p − t) / bs for both squared loss / 2 on the identity and log
      // loss on the sigmoid.
      const RowMat& margin = acts[n_layers];
      delta.resize(bs, 1);
      double batch_loss = 0;
      for (Eigen::Index i = 0; i < bs; ++i) {
        const float z = margin(i, 0);
        const float t = target(order[size_t(start + i)]);
        if (task == Task::kBinary) {
          // log(1 + e^z) − t·z, stably.
          batch_loss += std::max(z, 0.0f) + std::log1p(std::exp(-std::abs(z))) - t * z;
          delta(i, 0) = (Sigmoid(z) - t) * inv_bs;
        } else {
          batch_loss += 0.5 * double(z - t) * double(z - t);
          delta(i, 0) = (z - t) * inv_bs;
        }
      }
      batch_loss /= static_cast<double>(bs);
      double penalty = 0;
      for (const Layer& layer : layers) penalty += layer.w.squaredNorm();
      batch_loss += 0.5 * options.l2 * penalty / static_cast<double>(bs);
      loss_sum += batch_loss * static_cast<double>(bs);

      // Backward and Adam (sklearn's bias-corrected step size).
      ++step;
      const float lr_t = static_cast<float>(options.learning_rate *
                                            std::sqrt(1.0 - std::pow(kBeta2, double(step))) /
                                            (1.0 - std::pow(kBeta1, double(step))));
      const float b1 = float(kBeta1), b2 = float(kBeta2), eps = float(kAdamEps);
      const float l2_bs = static_cast<float>(options.l2) * inv_bs;
      for (size_t l = n_layers; l-- > 0;) {
        grad_w.noalias() = acts[l].transpose() * delta;
        grad_w += l2_bs * layers[l].w;
        grad_b = delta.colwise().sum();
        if (l > 0) {
          delta_prev.noalias() = delta * layers[l].w.transpose();
          delta_prev.array() *= (acts[l].array() > 0.0f).cast<float>();
        }
        m_w[l] = b1 * m_w[l] + (1 - b1) * grad_w;
        v_w[l] = b2 * v_w[l] + (1 - b2) * grad_w.cwiseAbs2();
        layers[l].w.array() -= lr_t * m_w[l].array() / (v_w[l].array().sqrt() + eps);
        m_b[l] = b1 * m_b[l] + (1 - b1) * grad_b;
        v_b[l] = b2 * v_b[l] + (1 - b2) * grad_b.cwiseAbs2();
        layers[l].b.array() -= lr_t * m_b[l].array() / (v_b[l].array().sqrt() + eps);
        if (l > 0) std::swap(delta, delta_prev);
      }
    }
    const double loss = loss_sum / static_cast<double>(n);
    if (!std::isfinite(loss)) {
      return Status::Internal("mlp: training diverged at epoch " + std::to_string(epoch) +
                              " (loss is not finite); try a smaller learning rate");
    }
    if (options.on_epoch) options.on_epoch(epoch, loss);
    // sklearn's _update_no_improvement_count with early_stopping=False.
    if (loss > best_loss - options.tol) {
      ++no_improvement;
    } else {
      no_improvement = 0;
    }
    best_loss = std::min(best_loss, loss);
    if (options.patience > 0 && no_improvement > options.patience) break;
  }

  // Regression: fold the label's standardisation into the output layer.
  if (task == Task::kRegression) {
    Layer& last = layers.back();
    last.w *= static_cast<float>(y_scale);
    last.b = (last.b.cast<double>().array() * y_scale + y_mean).cast<float>().matrix();
  }
  nlohmann::json json_layers = nlohmann::json::array();
  for (const Layer& layer : layers) {
    if (!layer.w.allFinite() || !layer.b.allFinite()) {
      return Status::Internal("mlp: training produced non-finite weights");
    }
    json_layers.push_back({{"rows", layer.w.rows()},
                           {"cols", layer.w.cols()},
                           {"weights", Flatten(layer.w)},
                           {"bias", Flatten(layer.b)}});
  }
  nlohmann::json j;
  j[kKey] = {{"version", kVersion},
             {"task", std::string(TaskName(task))},
             {"input_mean", scaling.mean},
             {"input_scale", scaling.scale},
             {"layers", std::move(json_layers)}};
  return j.dump();
}

namespace {

// A positive integer at obj[key]; `where` names obj in errors.
Result<Eigen::Index> PositiveInt(const nlohmann::json& obj, const char* key,
                                 const std::string& where) {
  const nlohmann::json* v = internal::Find(obj, key);
  if (v == nullptr) return Status::DataLoss(where + "." + key + " is missing");
  if (!v->is_number_integer() || v->get<long long>() < 1) {
    return Status::DataLoss(where + "." + key + " must be a positive integer");
  }
  return static_cast<Eigen::Index>(v->get<long long>());
}

// A float array of `expected` finite values at obj[key].
Result<std::vector<float>> FloatArray(const nlohmann::json& obj, const char* key,
                                      const std::string& where, size_t expected) {
  const nlohmann::json* v = internal::Find(obj, key);
  const std::string field = where + "." + key;
  if (v == nullptr) return Status::DataLoss(field + " is missing");
  if (!v->is_array()) return Status::DataLoss(field + " must be an array");
  if (v->size() != expected) {
    return Status::DataLoss(field + " has " + std::to_string(v->size()) + " values, expected " +
                            std::to_string(expected));
  }
  std::vector<float> out;
  out.reserve(expected);
  for (size_t i = 0; i < v->size(); ++i) {
    const nlohmann::json& e = (*v)[i];
    const float f = e.is_number() ? static_cast<float>(e.get<double>()) : 0.0f;
    if (!e.is_number() || !std::isfinite(f)) {
      return Status::DataLoss(field + "[" + std::to_string(i) + "] is not a finite number");
    }
    out.push_back(f);
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<Model>> CompileMlpModel(const std::string& json, Task task) {
  APX_ASSIGN_OR_RETURN(const nlohmann::json root, internal::ParseJson(json, "model"));
  const nlohmann::json* body = internal::Find(root, kKey);
  if (body == nullptr || !body->is_object()) return Status::DataLoss("missing apxserve_mlp object");
  const std::string where = kKey;
  const nlohmann::json* version = internal::Find(*body, "version");
  if (version == nullptr || !version->is_number_integer() ||
      version->get<long long>() != kVersion) {
    return Status::DataLoss(where + ".version must be " + std::to_string(kVersion));
  }
  const nlohmann::json* task_name = internal::Find(*body, "task");
  if (task_name == nullptr || !task_name->is_string()) {
    return Status::DataLoss(where + ".task is missing or not a string");
  }
  const Result<Task> model_task = ParseTask(task_name->get<std::string>());
  if (!model_task.ok()) return Status::DataLoss(where + ".task: " + model_task.status().message());
  if (*model_task != task) {
    return Status::InvalidArgument("model is for task '" + task_name->get<std::string>() +
                                   "', the pipeline is '" + std::string(TaskName(task)) + "'");
  }
  const nlohmann::json* mean_json = internal::Find(*body, "input_mean");
  if (mean_json == nullptr || !mean_json->is_array() || mean_json->empty()) {
    return Status::DataLoss(where + ".input_mean must be a non-empty array");
  }
  const size_t n_features = mean_json->size();
  APX_ASSIGN_OR_RETURN(std::vector<float> mean, FloatArray(*body, "input_mean", where, n_features));
  APX_ASSIGN_OR_RETURN(std::vector<float> scale,
                       FloatArray(*body, "input_scale", where, n_features));
  for (size_t c = 0; c < n_features; ++c) {
    if (!(scale[c] > 0)) {
      return Status::DataLoss(where + ".input_scale[" + std::to_string(c) + "] must be > 0");
    }
  }
  const nlohmann::json* layers_json = internal::Find(*body, "layers");
  if (layers_json == nullptr || !layers_json->is_array() || layers_json->empty()) {
    return Status::DataLoss(where + ".layers must be a non-empty array");
  }
  std::vector<Layer> layers;
  Eigen::Index fan_in = static_cast<Eigen::Index>(n_features);
  for (size_t l = 0; l < layers_json->size(); ++l) {
    const nlohmann::json& lj = (*layers_json)[l];
    const std::string lwhere = where + ".layers[" + std::to_string(l) + "]";
    if (!lj.is_object()) return Status::DataLoss(lwhere + " must be an object");
    APX_ASSIGN_OR_RETURN(const Eigen::Index rows, PositiveInt(lj, "rows", lwhere));
    APX_ASSIGN_OR_RETURN(const Eigen::Index cols, PositiveInt(lj, "cols", lwhere));
    if (rows != fan_in) {
      return Status::DataLoss(lwhere + ".rows is " + std::to_string(rows) + ", expected " +
                              std::to_string(fan_in) + " (the " +
                              (l == 0 ? "number of features" : "previous layer's cols") + ")");
    }
    APX_ASSIGN_OR_RETURN(const std::vector<float> w,
                         FloatArray(lj, "weights", lwhere, size_t(rows) * size_t(cols)));
    APX_ASSIGN_OR_RETURN(const std::vector<float> b, FloatArray(lj, "bias", lwhere, size_t(cols)));
    Layer layer;
    layer.w = Eigen::Map<const RowMat>(w.data(), rows, cols);
    layer.b = Eigen::Map<const RowVec>(b.data(), cols);
    layers.push_back(std::move(layer));
    fan_in = cols;
  }
  if (fan_in != 1) {
    return Status::DataLoss(where + ".layers: the last layer has " + std::to_string(fan_in) +
                            " cols, expected 1 output");
  }
  return std::unique_ptr<Model>(
      std::make_unique<MlpModel>(task, std::move(mean), std::move(scale), std::move(layers)));
}

}  // namespace apx::model
