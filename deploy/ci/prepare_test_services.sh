#!/usr/bin/env bash
# Install system services the test-suite uses (best effort; tests that need
# a missing service skip with a clear reason).
set -u
exit 0
