#!/usr/bin/env bash
# Prints the real data's folder: ../shared/data beside the repository when
# it is there (a development checkout), else the copy the repository ships
# in data/. The Makefile's DATA_DIR and internal/fixture.DataDir make the
# same choice.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -d "$root/../shared/data" ]]; then
	echo "$root/../shared/data"
else
	echo "$root/data"
fi
