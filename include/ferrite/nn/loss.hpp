#pragma once
// CrossEntropyLoss (mean), fused with softmax like torch.nn.CrossEntropyLoss on logits.
#include <cstdint>

#include "ferrite/nn/module.hpp"
#include "ferrite/ops/nn_ops.hpp"

namespace ferrite::nn {

template <class T>
class CrossEntropyLossT {
 public:
  // logits [B, C], labels [B] → mean loss. Saves softmax(logits) and the labels for backward.
  Result<double> forward(MatView<const T> logits, const std::int32_t* labels) {
    FE_TRY_ASSIGN(MatView<T> probs, detail::ensure_rows<T>(probs_, logits.rows, logits.cols));
    FE_TRY_ASSIGN(double loss, softmax_cross_entropy<T>(logits, labels, probs));
    probs_view_ = probs;
    labels_ = labels;
    return loss;
  }

  // d mean-loss / d logits [B, C].
  Result<MatView<const T>> backward() {
    if (!labels_)
      return make_error(ErrorCode::invalid_argument, "CrossEntropyLoss::backward", "backward called before forward");
    FE_TRY_ASSIGN(MatView<T> grad, detail::ensure_rows<T>(grad_, probs_view_.rows, probs_view_.cols));
    FE_TRY(softmax_cross_entropy_backward<T>(probs_view_, labels_, grad));
    return MatView<const T>(grad);
  }

  // softmax(logits) of the last forward, [B, C].
  MatView<const T> probabilities() const { return probs_view_; }

 private:
  Tensor probs_, grad_;  // sized for the largest batch seen (detail::ensure_rows)
  MatView<T> probs_view_{};
  const std::int32_t* labels_ = nullptr;
};

using CrossEntropyLoss = CrossEntropyLossT<float>;

}  // namespace ferrite::nn
