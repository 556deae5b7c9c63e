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
    FE_TRY(detail::ensure_shape<T>(probs_, logits.rows, logits.cols));
    FE_TRY_ASSIGN(double loss, softmax_cross_entropy<T>(logits, labels, probs_.mat<T>()));
    labels_ = labels;
    return loss;
  }

  // d mean-loss / d logits [B, C].
  Result<MatView<const T>> backward() {
    if (!labels_)
      return make_error(ErrorCode::invalid_argument, "CrossEntropyLoss::backward", "backward called before forward");
    FE_TRY(detail::ensure_shape<T>(grad_, probs_.dim(0), probs_.dim(1)));
    FE_TRY(softmax_cross_entropy_backward<T>(probs_.mat<T>(), labels_, grad_.mat<T>()));
    return MatView<const T>(grad_.mat<T>());
  }

  MatView<const T> probabilities() const { return probs_.mat<T>(); }

 private:
  Tensor probs_, grad_;
  const std::int32_t* labels_ = nullptr;
};

using CrossEntropyLoss = CrossEntropyLossT<float>;

}  // namespace ferrite::nn
