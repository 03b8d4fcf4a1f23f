#!/usr/bin/env bash
# The whole Wardline test suite. Installs and starts what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
