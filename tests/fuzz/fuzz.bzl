"""wxp_fuzz_target: one libFuzzer target plus the test that replays its checked-in inputs."""

def wxp_fuzz_target(name, srcs, deps, corpus, regressions, data = []):
    """Declares <name> (the fuzzer) and <name>_replay (a plain cc_test).

    Args:
      name: the fuzz binary. Under --config=fuzz it is linked with libFuzzer; otherwise
        (gcc) with a main() that replays the files given as arguments, so a crash found by
        the fuzzer can be reproduced and debugged with the normal toolchain. Tagged manual:
        `bazel build //...` never builds it with the wrong compiler.
      srcs: sources defining LLVMFuzzerTestOneInput.
      deps: what they need.
      corpus: directory (in this package) of seed inputs.
      regressions: directory (in this package) of inputs that once crashed the target.
      data: extra runtime files.
    """
    native.cc_library(
        name = name + "_entry",
        srcs = srcs,
        deps = deps + ["//tests/fuzz:fuzz_check"],
        data = data,
        alwayslink = True,
    )
    native.cc_binary(
        name = name,
        deps = [":" + name + "_entry"] + select({
            "//tests/fuzz:fuzzing": [],
            "//conditions:default": ["//tests/fuzz:replay_main"],
        }),
        linkopts = select({
            "//tests/fuzz:fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = ["manual"],
    )
    pkg = native.package_name()
    native.cc_test(
        name = name + "_replay",
        size = "small",
        deps = [":" + name + "_entry", "//tests/fuzz:replay_main"],
        data = native.glob([corpus + "/**", regressions + "/**"]) + data,
        args = [pkg + "/" + corpus, pkg + "/" + regressions],
    )
