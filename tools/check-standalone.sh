#!/usr/bin/env bash
# check-standalone.sh SOURCE_DIR - fails when a tracked file cites a document
# that is not in the repository (the design lives in docs/design.md).
set -euo pipefail
cd "$1"
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "check-standalone: not a git checkout; nothing to check"
  exit 0
fi
pattern='DESIGN\.md|STYLE\.md|\.\./shared/'
if git ls-files -z | grep -zv '^tools/check-standalone.sh$' |
     xargs -0 grep -nE "$pattern" --; then
  echo "check-standalone: the files above cite documents outside the repository"
  exit 1
fi
echo "check-standalone: no citation of documents outside the repository"
