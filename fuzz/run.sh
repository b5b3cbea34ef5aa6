#!/usr/bin/env bash
# Run the cargo-fuzz targets, each for a bounded time.
#
#   bash fuzz/run.sh                      # every target, 60 s each
#   FUZZ_SECONDS=10 bash fuzz/run.sh      # the CI smoke run
#   bash fuzz/run.sh route headers        # only these targets
#
# Installs cargo-fuzz (`cargo install cargo-fuzz --locked`) if it is
# missing. Uses a nightly toolchain if rustup has one; otherwise stable with
# RUSTC_BOOTSTRAP=1 (set FUZZ_TOOLCHAIN=stable to force that). The corpus
# grows in fuzz/corpus/<target> (seeded from fuzz/seeds/<target>, which is
# never written to); crashes land in fuzz/artifacts/<target>.
#
# Exits non-zero if any target found a crash (or an OOM or a timeout), after
# printing each new artifact's path and how to reproduce it.
#
# Environment: FUZZ_SECONDS (per target, default 60), FUZZ_TOOLCHAIN
# (nightly|stable), FUZZ_SANITIZER (address, the default, or none),
# FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
seconds="${FUZZ_SECONDS:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

toolchain="${FUZZ_TOOLCHAIN:-}"
if [[ -z "$toolchain" ]]; then
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        toolchain=nightly
    else
        toolchain=stable
    fi
fi
if [[ "$toolchain" != nightly ]]; then
    # cargo-fuzz passes -Z flags; stable accepts them with RUSTC_BOOTSTRAP
    # (ASan included; FUZZ_SANITIZER=none if it fails somewhere).
    export RUSTC_BOOTSTRAP=1
fi
sanitizer="${FUZZ_SANITIZER:-address}"
fuzz=(cargo "+$toolchain" fuzz)

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list)
fi

echo "run.sh: ${#targets[@]} targets, ${seconds}s each, $toolchain toolchain, sanitizer $sanitizer" >&2
if [[ $# -eq 0 ]]; then
    "${fuzz[@]}" build --sanitizer "$sanitizer" # all at once; `run` builds only what changed
fi

failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target" "seeds/$target"
    before="$(ls "artifacts/$target")"
    echo "run.sh: fuzzing $target for ${seconds}s" >&2
    status=0
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    "${fuzz[@]}" run --sanitizer "$sanitizer" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        ${FUZZ_ARGS:-} || status=$?
    new="$(comm -13 <(echo "$before") <(ls "artifacts/$target"))"
    if [[ $status -ne 0 || -n "$new" ]]; then
        failed+=("$target")
        for artifact in $new; do
            echo "run.sh: $target: CRASH artifact fuzz/artifacts/$target/$artifact" >&2
            echo "run.sh:   reproduce: ${RUSTC_BOOTSTRAP:+RUSTC_BOOTSTRAP=1 }cargo +$toolchain fuzz run --sanitizer $sanitizer $target fuzz/artifacts/$target/$artifact" >&2
        done
        [[ -n "$new" ]] || echo "run.sh: $target: exited with status $status" >&2
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "run.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "run.sh: all ${#targets[@]} targets ran ${seconds}s without a crash" >&2
