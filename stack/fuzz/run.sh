#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS seconds each; exits non-zero on the
# first crash (libFuzzer leaves the input under artifacts/<target>/).
#
# Works on stable Rust: `--sanitizer none` avoids the nightly-only
# `-Zsanitizer` flag. The engine forbids unsafe code, so AddressSanitizer
# would add little; coverage-guided fuzzing and the assertions still run.
set -euo pipefail

if [[ $# -ne 1 || ! "$1" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 SECONDS  (per target)" >&2
    exit 2
fi
seconds=$1
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found; installing it (about a minute)" >&2
    cargo install cargo-fuzz
fi

mapfile -t targets < <(cargo fuzz list)
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "no fuzz targets found" >&2
    exit 1
fi

for target in "${targets[@]}"; do
    echo "=== fuzzing $target for ${seconds}s" >&2
    # Committed seed inputs, if any, are read alongside the working corpus.
    seeds=()
    if [[ -d "seeds/$target" ]]; then
        seeds=("seeds/$target")
    fi
    mkdir -p "corpus/$target"
    cargo fuzz run "$target" --sanitizer none "corpus/$target" "${seeds[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1
done
echo "all ${#targets[@]} target(s) ran without a crash" >&2
