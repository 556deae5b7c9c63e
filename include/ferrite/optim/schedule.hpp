#pragma once
// Learning-rate schedules with torch.optim.lr_scheduler's exact formulas (in double, as Python
// computes them), per optimizer step: lr(step) is the rate the step with 0-based index `step` uses,
// i.e. what PyTorch's scheduler has set after `step` calls of scheduler.step().
//
//   constant                    lr
//   cosine (+ linear warm-up)   LambdaLR with factor(s) = (s + 1) / W for s < W, else
//                               0.5 (1 + cos(pi (s - W) / (T - W)))     (W warm-up steps, T total)
//   onecycle                    OneCycleLR(max_lr = lr, total_steps = T, pct_start, div_factor,
//                               final_div_factor, anneal_strategy='cos', three_phase=False,
//                               cycle_momentum=False): cosine from lr / div_factor up to lr over
//                               pct_start * T - 1 steps, then down to lr / div_factor / final_div_factor
// scripts/pytorch/resnet18.py builds the same schedulers, so both sides train with the same rates.
#include <cmath>
#include <cstdint>
#include <string>

#include "ferrite/core/format.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::optim {

struct LrSchedule {
  enum class Kind { constant, cosine, onecycle };
  Kind kind = Kind::constant;
  double lr = 0.1;               // peak (OneCycle's max_lr)
  std::int64_t total_steps = 1;  // T
  std::int64_t warmup_steps = 0; // cosine: W
  double pct_start = 0.3, div_factor = 25.0, final_div_factor = 1e4;  // onecycle (PyTorch's defaults)

  static Result<Kind> parse_kind(const std::string& name) {
    if (name == "constant") return Kind::constant;
    if (name == "cosine") return Kind::cosine;
    if (name == "onecycle") return Kind::onecycle;
    return make_error(ErrorCode::invalid_argument, "LrSchedule",
                      fe_format("unknown schedule '{}' (expected constant, cosine or onecycle)", name));
  }
  static const char* kind_name(Kind k) {
    return k == Kind::constant ? "constant" : k == Kind::cosine ? "cosine" : "onecycle";
  }

  Status check() const {
    if (!(lr >= 0) || total_steps < 1 || warmup_steps < 0 || (kind == Kind::cosine && warmup_steps >= total_steps && warmup_steps > 0))
      return make_error(ErrorCode::invalid_argument, "LrSchedule",
                        fe_format("{}: lr {} must be >= 0, total steps {} >= 1, warm-up steps {} in [0, total)", kind_name(kind),
                                  lr, total_steps, warmup_steps));
    if (kind == Kind::onecycle && !(pct_start > 0 && pct_start < 1 && pct_start * double(total_steps) - 1 > 0))
      return make_error(ErrorCode::invalid_argument, "LrSchedule",
                        fe_format("onecycle: pct_start {} x {} steps leaves no warm-up phase", pct_start, total_steps));
    return ok_status();
  }

  double at(std::int64_t step) const {
    const double pi = 3.14159265358979323846;  // math.pi
    switch (kind) {
      case Kind::constant:
        return lr;
      case Kind::cosine: {
        const std::int64_t s = step < total_steps ? step : total_steps - 1;
        if (s < warmup_steps) return lr * (double(s + 1) / double(warmup_steps));
        return lr * (0.5 * (1.0 + std::cos(pi * double(s - warmup_steps) / double(total_steps - warmup_steps))));
      }
      case Kind::onecycle: {
        // torch: phases end at float(pct_start * total_steps) - 1 and total_steps - 1; _annealing_cos.
        const double initial = lr / div_factor, min_lr = initial / final_div_factor;
        const double end0 = pct_start * double(total_steps) - 1, end1 = double(total_steps) - 1;
        const double s = double(step);
        const auto anneal = [&](double start, double end, double pct) {
          const double cos_out = std::cos(pi * pct) + 1;
          return end + (start - end) / 2.0 * cos_out;
        };
        if (s <= end0) return anneal(initial, lr, s / end0);
        return anneal(lr, min_lr, (s - end0) / (end1 - end0));
      }
    }
    return lr;
  }
};

}  // namespace ferrite::optim
