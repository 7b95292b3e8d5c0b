#!/usr/bin/env python3
"""Static checks of dashboards/rootwarden.json (stdlib only).

Checks: valid JSON, schemaVersion >= 39, uid/title, the datasource/instance/task
variables, every panel's datasource is ${datasource}, every target has an expr,
every metric an expr names is in exported_metrics.txt (or is Prometheus' own `up`),
every selector filters instance=~"$instance" (and task=~"$task" where the metric
has a task label), and only known $variables are used.

With --rule-file PATH it also writes every expr, variables substituted, as a
recording-rule group (JSON is YAML) so that `promtool check rules PATH` parses
the PromQL for real: promtool has no bare expression parser.

With --alerts PATH it checks instead that every metric the alerting rules' exprs
name is in exported_metrics.txt (or is `up`): an alert on a metric the daemon
does not export would never fire.
"""
import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DASHBOARD = os.path.join(HERE, "rootwarden.json")
METRICS_FILE = os.path.join(HERE, "exported_metrics.txt")
WANT_DS = {"type": "prometheus", "uid": "${datasource}"}

# Series Prometheus makes itself at scrape time; not exported by the daemon.
PROMETHEUS_SERIES = {"up"}
# Families that carry a `task` label: their selectors must filter by $task.
TASK_LABELLED = {
    "rootwarden_jobs_completed_total",
    "rootwarden_job_duration_seconds",
    "rootwarden_assume_root_requests_total",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
KNOWN_VARIABLES = {"instance", "task", "__rate_interval", "__range", "__interval", "datasource"}

# Default substitutions, as the integration test applies them.
DEFAULT_SUBST = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m",
                 "instance": ".*", "task": ".*"}

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "atan2", "inf", "nan", "start", "end",
}


def load_metrics(path=METRICS_FILE):
    with open(path) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


def iter_panels(panels, row=None):
    """Yields (row title, panel) for every non-row panel, rows expanded or collapsed."""
    for p in panels:
        if p.get("type") == "row":
            yield from iter_panels(p.get("panels", []), p.get("title"))
            row_title = p.get("title")
            # Panels after an expanded row belong to it until the next row.
            row = row_title
            continue
        yield row, p


def substitute(expr, subst=None):
    s = dict(DEFAULT_SUBST)
    s.update(subst or {})

    def repl(m):
        name = m.group(1) or m.group(2)
        return s.get(name, m.group(0))
    # ${name}, ${name:format} and $name
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)


def strip_strings(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def selectors(expr):
    """Yields (metric name, matcher text) for each vector selector in expr."""
    clean = strip_strings(expr)
    # Label lists of by/without/on/ignoring/group_x are not selectors.
    clean = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", clean)
    # Remove durations in brackets and numbers so they are not mistaken for names.
    clean = re.sub(r"\[[^\]]*\]", " ", clean)
    orig = expr
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?", clean):
        name, braces, paren = m.group(1), m.group(2), m.group(3)
        if paren or name.lower() in PROMQL_WORDS:
            continue  # function call or keyword
        yield name, braces or ""


def matchers_text(expr):
    """The real (unstripped) {...} matcher blocks of expr, by metric name."""
    out = []
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{((?:[^}\"]|\"(?:[^\"\\]|\\.)*\")*)\}", expr):
        out.append((m.group(1), m.group(2)))
    return out


def family_of(name, families):
    if name in families:
        return name
    for suf in HISTOGRAM_SUFFIXES:
        if name.endswith(suf):
            base = name[: -len(suf)]
            if base in families and base.endswith("_seconds"):
                return base
    return None


def check(dashboard_path=DASHBOARD, metrics_path=METRICS_FILE):
    errors = []
    try:
        with open(dashboard_path) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        return [f"{dashboard_path}: not valid JSON: {e}"], None
    families = set(load_metrics(metrics_path))

    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 39:
        errors.append(f"schemaVersion must be >= 39, got {d.get('schemaVersion')!r}")
    if not d.get("uid"):
        errors.append("dashboard has no uid")
    if d.get("title") != "rootwarden":
        errors.append(f"title must be 'rootwarden', got {d.get('title')!r}")

    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errors.append("variable 'datasource' must be of type datasource with query 'prometheus'")
    for name, want in (("instance", "label_values(rootwarden_build_info, instance)"),
                       ("task", "label_values(rootwarden_jobs_completed_total, task)")):
        v = variables.get(name)
        if not v:
            errors.append(f"variable {name!r} missing")
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if q != want:
            errors.append(f"variable {name!r}: query must be {want!r}, got {q!r}")
        if v.get("type") != "query" or not v.get("multi") or not v.get("includeAll"):
            errors.append(f"variable {name!r} must be a multi, includeAll query variable")
        if v.get("datasource") != WANT_DS:
            errors.append(f"variable {name!r}: datasource must be {WANT_DS}")

    rows = [p for p in d.get("panels", []) if p.get("type") == "row"]
    if len(rows) < 7:
        errors.append(f"expected at least 7 rows, found {len(rows)}")

    queries = []
    seen_ids = set()
    for row, p in iter_panels(d.get("panels", [])):
        title = p.get("title") or f"panel id {p.get('id')}"
        where = f"panel {title!r}"
        if p.get("id") in seen_ids:
            errors.append(f"{where}: duplicate id {p.get('id')}")
        seen_ids.add(p.get("id"))
        if p.get("datasource") != WANT_DS:
            errors.append(f"{where}: datasource must be {WANT_DS}, got {p.get('datasource')!r}")
        if p.get("type") not in ("timeseries", "stat", "table", "gauge", "bargauge"):
            errors.append(f"{where}: unexpected panel type {p.get('type')!r}")
        targets = p.get("targets") or []
        if not targets:
            errors.append(f"{where}: no targets")
        for t in targets:
            expr = (t.get("expr") or "").strip()
            twhere = f"{where} target {t.get('refId')}"
            if not expr:
                errors.append(f"{twhere}: empty expr")
                continue
            if t.get("datasource", WANT_DS) != WANT_DS:
                errors.append(f"{twhere}: datasource must be {WANT_DS}")
            for var in re.findall(r"\$\{(\w+)|\$(\w+)", expr):
                var = var[0] or var[1]
                if var not in KNOWN_VARIABLES:
                    errors.append(f"{twhere}: unknown variable ${var}")
            if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}") \
                    or expr.count("[") != expr.count("]"):
                errors.append(f"{twhere}: unbalanced brackets in {expr!r}")
            names = [n for n, _ in selectors(expr)]
            if not names:
                errors.append(f"{twhere}: expr names no metric: {expr!r}")
            for n in names:
                if family_of(n, families) is None and n not in PROMETHEUS_SERIES:
                    errors.append(f"{twhere}: metric {n!r} is not in {os.path.basename(metrics_path)}")
            blocks = dict()
            for n, m in matchers_text(expr):
                blocks.setdefault(n, []).append(m)
            for n in names:
                ms = blocks.get(n)
                if not ms:
                    errors.append(f"{twhere}: selector {n} has no label matchers (needs instance=~\"$instance\")")
                    continue
                for m in ms:
                    if 'instance=~"$instance"' not in m:
                        errors.append(f"{twhere}: selector {n}{{{m}}} does not filter instance=~\"$instance\"")
                    fam = family_of(n, families)
                    if fam in TASK_LABELLED and 'task=~"$task"' not in m:
                        errors.append(f"{twhere}: selector {n}{{{m}}} does not filter task=~\"$task\"")
            queries.append({"row": row, "title": title, "ref_id": t.get("refId"),
                            "instant": bool(t.get("instant")), "expr": expr})
    return errors, queries


def alert_exprs(path):
    """(alert name, expr) of every rule in a Prometheus rule file, without a YAML library:
    `expr:` is either inline or a block scalar (`|`, `>`) of the lines indented deeper."""
    out = []
    lines = open(path).read().splitlines()
    name = None
    for i, line in enumerate(lines):
        m = re.match(r"\s*-?\s*(alert|record):\s*(\S+)", line)
        if m:
            name = m.group(2)
            continue
        m = re.match(r"(\s*)expr:\s*(.*)$", line)
        if not m:
            continue
        indent, rest = len(m.group(1)), m.group(2).strip()
        if rest and rest[0] not in "|>":
            out.append((name, rest.strip("'\"")))
            continue
        block = []
        for nxt in lines[i + 1:]:
            if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                break
            block.append(nxt.strip())
        out.append((name, " ".join(b for b in block if b)))
    return out


def check_alerts(path, metrics_path=METRICS_FILE):
    families = set(load_metrics(metrics_path))
    errors, exprs = [], alert_exprs(path)
    if not exprs:
        errors.append(f"{path}: no expr found")
    for name, expr in exprs:
        names = [n for n, _ in selectors(expr)]
        if not names:
            errors.append(f"alert {name}: expr names no metric: {expr!r}")
        for n in names:
            if family_of(n, families) is None and n not in PROMETHEUS_SERIES:
                errors.append(f"alert {name}: metric {n!r} is not in {os.path.basename(metrics_path)}")
    return errors, exprs


def rule_group(queries, subst=None):
    rules = []
    for i, q in enumerate(queries):
        rules.append({"record": f"dashboard_panel_query_{i}", "expr": substitute(q["expr"], subst)})
    return {"groups": [{"name": "rootwarden-dashboard-exprs", "rules": rules}]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dashboard", default=DASHBOARD)
    ap.add_argument("--metrics", default=METRICS_FILE)
    ap.add_argument("--rule-file", help="write substituted exprs as a recording-rule file for promtool")
    ap.add_argument("--alerts", help="check the metrics of this alerting rule file instead of the dashboard")
    args = ap.parse_args()
    if args.alerts:
        errors, exprs = check_alerts(args.alerts, args.metrics)
        for e in errors:
            print(f"FAIL: {e}", file=sys.stderr)
        if errors:
            return 1
        print(f"PASS: alert rules use only exported metrics ({len(exprs)} exprs, {os.path.basename(args.alerts)})")
        return 0
    errors, queries = check(args.dashboard, args.metrics)
    if errors:
        for e in errors:
            print(f"FAIL: {e}", file=sys.stderr)
        return 1
    if args.rule_file:
        with open(args.rule_file, "w") as f:
            json.dump(rule_group(queries), f, indent=1)
    print(f"PASS: dashboard lint ({len(queries)} queries, metrics all in {os.path.basename(args.metrics)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
