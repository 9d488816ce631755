#include "bench/reference_move.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/safetensors.h"
#include "common/status_macros.h"

namespace wxp {
namespace {

constexpr char kTensor[] = "flat";

absl::Status Save(const std::string& path, const std::vector<float>& values) {
  absl::string_view data(reinterpret_cast<const char*>(values.data()), values.size() * 4);
  WXP_ASSIGN_OR_RETURN(
      std::string bytes,
      SerializeSafetensors({{kTensor, DType::kF32, {static_cast<int64_t>(values.size())}, data}}));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> Load(const std::string& path) {
  WXP_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(path));
  const TensorView& t = f.tensors().at(0);
  std::vector<float> out(static_cast<size_t>(t.numel));
  ToFloat32(t.dtype, t.data.data(), t.numel, out.data());
  return out;
}

// out = sum_i w_i * in_i, loaded from and saved to files: one reference pass.
absl::Status WeightedSumPass(const std::vector<std::string>& inputs,
                             const std::vector<float>& weights, const std::string& output) {
  std::vector<float> acc;
  for (size_t i = 0; i < inputs.size(); ++i) {
    WXP_ASSIGN_OR_RETURN(std::vector<float> in, Load(inputs[i]));
    if (acc.empty()) acc.assign(in.size(), 0.0f);
    const float w = weights[i];
    for (size_t j = 0; j < in.size(); ++j) acc[j] += w * in[j];
  }
  return Save(output, acc);
}

}  // namespace

absl::StatusOr<double> TimeReferenceMove(const std::vector<float>& x, const std::vector<float>& v,
                                         const std::vector<float>& p, const std::vector<float>& g,
                                         const std::vector<float>& gw, const MoveCoefficients& k,
                                         double min_seconds) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("wxp_b1_ref_", ::getpid());
  fs::create_directories(dir);
  auto file = [&](const char* name) { return (dir / name).string(); };
  WXP_RETURN_IF_ERROR(Save(file("x"), x));
  WXP_RETURN_IF_ERROR(Save(file("v"), v));
  WXP_RETURN_IF_ERROR(Save(file("p"), p));
  WXP_RETURN_IF_ERROR(Save(file("g"), g));
  WXP_RETURN_IF_ERROR(Save(file("gw"), gw));
  auto move = [&]() -> absl::Status {
    WXP_RETURN_IF_ERROR(WeightedSumPass({file("p"), file("x")}, {1, -1}, file("d1")));
    WXP_RETURN_IF_ERROR(WeightedSumPass({file("g"), file("x")}, {1, -1}, file("d2")));
    WXP_RETURN_IF_ERROR(WeightedSumPass({file("x"), file("gw")}, {1, -1}, file("d3")));
    WXP_RETURN_IF_ERROR(WeightedSumPass({file("v"), file("d1"), file("d2"), file("d3")},
                                        {k.a, k.b, k.c, k.d}, file("v")));
    return WeightedSumPass({file("x"), file("v")}, {1, k.step}, file("x"));
  };
  WXP_RETURN_IF_ERROR(move());  // warm-up
  double best = 1e300, total = 0;
  int runs = 0;
  while (total < min_seconds || runs < 2) {
    const auto t0 = std::chrono::steady_clock::now();
    WXP_RETURN_IF_ERROR(move());
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, dt);
    total += dt;
    ++runs;
  }
  fs::remove_all(dir);
  return best;
}

}  // namespace wxp
