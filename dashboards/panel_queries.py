#!/usr/bin/env python3
"""Prints every dashboard query as JSON, Grafana variables substituted, for the
integration test to evaluate against a live Prometheus (stdlib only).

Output: a list of {"row", "title", "ref_id", "instant", "expr"}. Defaults:
$__rate_interval=1m, $__interval=15s, $__range=5m, $instance=.*, $task=.*
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_dashboard  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dashboard", default=check_dashboard.DASHBOARD)
    ap.add_argument("--rate-interval", default="1m")
    ap.add_argument("--range", default="5m")
    ap.add_argument("--instance", default=".*")
    ap.add_argument("--task", default=".*")
    args = ap.parse_args()
    errors, queries = check_dashboard.check(args.dashboard)
    if queries is None:
        print("\n".join(errors), file=sys.stderr)
        return 1
    subst = {"__rate_interval": args.rate_interval, "__range": args.range,
             "instance": args.instance, "task": args.task}
    out = [dict(q, expr=check_dashboard.substitute(q["expr"], subst)) for q in queries]
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
