#include "bench/paired_bootstrap.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"

namespace wxp::bench {
namespace {

// Per row and seed, the number of hits in each block; block sizes are shared.
struct Blocks {
  std::vector<std::vector<std::vector<int>>> hits;  // [row][seed][block]
  std::vector<int> sizes;
};

Blocks MakeBlocks(const Outcomes& outcomes, int block) {
  Blocks b;
  const size_t n = outcomes[0][0].size();
  for (size_t at = 0; at < n; at += block) {
    b.sizes.push_back(static_cast<int>(std::min<size_t>(block, n - at)));
  }
  b.hits.resize(outcomes.size());
  for (size_t r = 0; r < outcomes.size(); ++r) {
    for (const std::vector<uint8_t>& seed : outcomes[r]) {
      std::vector<int> h(b.sizes.size(), 0);
      for (size_t p = 0; p < n; ++p) h[p / block] += seed[p] != 0;
      b.hits[r].push_back(std::move(h));
    }
  }
  return b;
}

Interval Percentiles(double estimate, std::vector<double> replicates) {
  if (replicates.empty()) return {estimate, std::nan(""), std::nan("")};
  std::sort(replicates.begin(), replicates.end());
  auto at = [&](double q) {
    const size_t i = static_cast<size_t>(q * (replicates.size() - 1) + 0.5);
    return replicates[i];
  };
  return {estimate, at(0.025), at(0.975)};
}

double GapClosed(double row, double reference, double bound) {
  return (row - reference) / (bound - reference);
}

}  // namespace

absl::StatusOr<std::vector<RowIntervals>> PairedBootstrap(const Outcomes& outcomes,
                                                          size_t reference,
                                                          std::optional<size_t> bound,
                                                          const BootstrapOptions& options) {
  if (outcomes.empty() || outcomes[0].empty() || outcomes[0][0].empty()) {
    return absl::InvalidArgumentError("bootstrap: no rows, seeds or positions");
  }
  if (options.block < 1 || options.replicates < 1) {
    return absl::InvalidArgumentError("bootstrap: block and replicates must be positive");
  }
  const size_t rows = outcomes.size(), seeds = outcomes[0].size();
  const size_t n = outcomes[0][0].size();
  if (reference >= rows || (bound && *bound >= rows)) {
    return absl::InvalidArgumentError("bootstrap: reference or bound row out of range");
  }
  for (size_t r = 0; r < rows; ++r) {
    if (outcomes[r].size() != seeds) {
      return absl::InvalidArgumentError(
          absl::StrCat("bootstrap: row ", r, " has ", outcomes[r].size(), " seeds, not ", seeds));
    }
    for (const std::vector<uint8_t>& s : outcomes[r]) {
      if (s.size() != n) {
        return absl::InvalidArgumentError(
            absl::StrCat("bootstrap: row ", r, " has ", s.size(), " positions, not ", n));
      }
    }
  }
  const Blocks b = MakeBlocks(outcomes, options.block);
  const size_t nb = b.sizes.size();

  // Accuracy of every row on one draw: drawn seeds and, per drawn seed, drawn blocks.
  auto accuracies = [&](const std::vector<size_t>& seed_draw,
                        const std::vector<std::vector<size_t>>& block_draw) {
    std::vector<double> acc(rows, 0);
    for (size_t k = 0; k < seed_draw.size(); ++k) {
      int64_t total = 0;
      for (size_t j : block_draw[k]) total += b.sizes[j];
      for (size_t r = 0; r < rows; ++r) {
        int64_t hits = 0;
        for (size_t j : block_draw[k]) hits += b.hits[r][seed_draw[k]][j];
        acc[r] += static_cast<double>(hits) / total / seed_draw.size();
      }
    }
    return acc;
  };
  std::vector<size_t> all_seeds(seeds), all_blocks(nb);
  for (size_t i = 0; i < seeds; ++i) all_seeds[i] = i;
  for (size_t i = 0; i < nb; ++i) all_blocks[i] = i;
  const std::vector<double> point =
      accuracies(all_seeds, std::vector<std::vector<size_t>>(seeds, all_blocks));

  std::mt19937_64 rng(options.seed);
  std::uniform_int_distribution<size_t> pick_seed(0, seeds - 1), pick_block(0, nb - 1);
  std::vector<std::vector<double>> acc_rep(rows), delta_rep(rows), gap_rep(rows);
  std::vector<size_t> seed_draw(seeds);
  std::vector<std::vector<size_t>> block_draw(seeds, std::vector<size_t>(nb));
  for (int rep = 0; rep < options.replicates; ++rep) {
    for (size_t k = 0; k < seeds; ++k) {
      seed_draw[k] = seeds == 1 ? 0 : pick_seed(rng);
      for (size_t& j : block_draw[k]) j = pick_block(rng);
    }
    const std::vector<double> acc = accuracies(seed_draw, block_draw);
    for (size_t r = 0; r < rows; ++r) {
      acc_rep[r].push_back(acc[r]);
      delta_rep[r].push_back(acc[r] - acc[reference]);
      // A draw where the bound ties the reference says nothing about the fraction.
      if (bound && acc[*bound] != acc[reference]) {
        gap_rep[r].push_back(GapClosed(acc[r], acc[reference], acc[*bound]));
      }
    }
  }
  std::vector<RowIntervals> out(rows);
  for (size_t r = 0; r < rows; ++r) {
    out[r].accuracy = Percentiles(point[r], acc_rep[r]);
    out[r].delta = Percentiles(point[r] - point[reference], delta_rep[r]);
    if (bound) {
      out[r].gap_closed =
          Percentiles(GapClosed(point[r], point[reference], point[*bound]), gap_rep[r]);
    }
  }
  return out;
}

}  // namespace wxp::bench
