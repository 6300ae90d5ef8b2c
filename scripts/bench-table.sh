#!/usr/bin/env bash
# Reads `cargo bench --bench lru` output on stdin; prints "bench  median throughput" lines.
awk '
  /^[a-z_0-9]+\/[a-z_+]+\/[0-9]t/ { name = $1 }
  /thrpt:  \[/ && name != "" { print name, $(NF-3), $(NF-2); name = "" }
'
