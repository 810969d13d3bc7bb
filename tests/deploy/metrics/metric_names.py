#!/usr/bin/python3
"""Checks that every metric named by the alert rules and the Grafana dashboard
under deploy/ exists in a Prometheus text exposition (redrived's /metrics).

    metric_names.py EXPOSITION [--rules FILE]... [--dashboard FILE]... [--allow NAME]...

EXPOSITION is a file or an http:// URL. Its metric families are its
`# TYPE name type` lines. A name used in an expression exists when it is a
family, a histogram's `_bucket`, `_sum` or `_count` (a summary's `_sum` or
`_count`), or `NAME_total` of a counter family `NAME` (OpenMetrics style).
--allow names metrics that come from elsewhere (`up`, which Prometheus writes
itself). Exit 0 when every name exists, 1 when one does not (each is listed
with the alert or panel using it), 2 when an input cannot be read or parsed.

Standard library only (Debian's /usr/bin/python3). Metric names are taken out
of PromQL without a full parser: string literals, comments, Grafana template
variables, label matchers {...}, range and subquery selectors [...], the label
lists of by/without/on/ignoring/group_left/group_right and offset/@ modifiers
are removed; of the identifiers left, those followed by '(' are functions or
aggregations and the PromQL keywords are skipped; the rest are metric names.
A selector by `__name__` cannot be checked and is an error.

The rule file is read with a small reader for what Prometheus rule files use
(`- alert:`/`- record:` items with an `expr:` that is a plain, quoted or block
scalar), not a YAML library: the standard library has none. It fails rather
than guess: every rule must yield exactly one expression.
"""

import json
import re
import sys
import urllib.request

# Identifiers that are never metric names where they stand (not followed by
# '('): binary and set operators, modifiers, literals.
KEYWORDS = frozenset("""
    and or unless bool by without on ignoring group_left group_right offset
    inf nan atan2
    sum min max avg group stddev stdvar count count_values bottomk topk quantile
""".split())

_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|`[^`]*`')
_TEMPLATE_VAR = re.compile(r"\$\{[^}]*\}|\[\[[^\]]*\]\]|\$\w+")
_COMMENT = re.compile(r"#[^\n]*")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\s*[0-9a-zA-Z_.]+|@\s*-?[0-9.]+(?:e[+-]?[0-9]+)?")
_TOKEN = re.compile(r"[0-9.][0-9a-zA-Z_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*")


class ParseError(Exception):
    pass


def metric_names(expr):
    """The set of metric names a PromQL expression (a Grafana query: template
    variables allowed) selects. Raises ParseError for what it cannot read."""
    if "__name__" in expr:
        raise ParseError("selects metrics by __name__, which cannot be checked: %r" % expr)
    s = _STRING.sub(" ", expr)
    s = _TEMPLATE_VAR.sub(" ", s)
    s = _COMMENT.sub(" ", s)
    s = _MATCHERS.sub(" ", s)
    s = _RANGE.sub(" ", s)
    s = _GROUPING.sub(" ", s)
    s = _OFFSET.sub(" ", s)
    leftover = set(s) & set("{}[]\"'`$#")
    if leftover:
        raise ParseError("cannot read %r (%s left over)" % (expr, "".join(sorted(leftover))))
    names = set()
    for m in _TOKEN.finditer(s):
        token = m.group(0)
        if token[0].isdigit() or token[0] == ".":
            continue  # a number or a duration
        if s[m.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        if token.lower() in KEYWORDS:
            continue
        names.add(token)
    return names


# ---------------------------------------------------------------- rule files

_KEY = re.compile(r"^(\s*)(-\s+)?([A-Za-z_]+)\s*:(.*)$")
# The keys of a rule; a list item opening with one of them is a rule.
_RULE_KEYS = frozenset(("alert", "record", "expr", "for", "keep_firing_for", "labels",
                        "annotations"))


def _scalar(value, continuation, where):
    """A YAML scalar: `value` is what follows `expr:` on its line,
    `continuation` the more indented lines after it."""
    value = value.strip()
    if value[:1] in ("|", ">"):
        if not re.fullmatch(r"[|>][-+]?[0-9]?", value):
            raise ParseError("%s: unsupported block scalar header %r" % (where, value))
        return "\n".join(line.strip() for line in continuation)
    if value.startswith('"'):
        if continuation or not value.endswith('"') or len(value) < 2:
            raise ParseError("%s: a double-quoted expr must be on one line" % where)
        return json.loads(value)
    if value.startswith("'"):
        if continuation or not value.endswith("'") or len(value) < 2:
            raise ParseError("%s: a single-quoted expr must be on one line" % where)
        return value[1:-1].replace("''", "'")
    # A plain scalar: a ' #' starts a comment; more indented lines continue it.
    value = re.sub(r"\s+#.*$", "", value)
    return " ".join([value] + [line.strip() for line in continuation]).strip()


def rule_expressions(text, path="rules"):
    """[(rule name, expr)] of a Prometheus rule file, in file order."""
    lines = text.split("\n")
    items = []  # {"line": n, "alert"/"record": name, "expr": expr}
    col = None  # the column of the keys of the current group's rules
    i = 0
    while i < len(lines):
        m = _KEY.match(lines[i])
        if not m:
            i += 1
            continue
        key_col = len(m.group(1)) + len(m.group(2) or "")
        key = m.group(3)
        where = "%s:%d" % (path, i + 1)
        if key == "rules":
            col = None  # the first item of this list sets it
        elif m.group(2) and key in _RULE_KEYS and (col is None or key_col == col):
            col = key_col
            items.append({"line": i + 1})
        if col is None or key_col != col or key not in ("alert", "record", "expr"):
            i += 1
            continue
        item = items[-1]
        if key in item or (key != "expr" and ("alert" in item or "record" in item)):
            raise ParseError("%s: a second %s in one rule" % (where, key))
        i += 1
        continuation = []
        while i < len(lines) and (not lines[i].strip() or
                                  len(lines[i]) - len(lines[i].lstrip()) > key_col):
            continuation.append(lines[i])
            i += 1
        while continuation and not continuation[-1].strip():
            continuation.pop()
        value = _scalar(m.group(4), continuation, where)
        if not value.strip():
            raise ParseError("%s: empty %s" % (where, key))
        item[key] = value
    if not items:
        raise ParseError("%s: no rules" % path)
    out = []
    for item in items:
        name = item.get("alert", item.get("record"))
        if name is None or "expr" not in item:
            raise ParseError("%s:%d: a rule needs alert or record, and expr"
                             % (path, item["line"]))
        out.append((name, item["expr"]))
    return out


# ---------------------------------------------------------------- dashboards

def _variable_expression(query, where):
    """The PromQL inside a Grafana Prometheus variable query, or None."""
    q = query.strip()
    m = re.fullmatch(r"label_values\((.*)\)", q, re.S)
    if m:
        inner = m.group(1)
        comma = inner.rfind(",")
        if comma < 0:
            return None  # label_values(label): no metric
        label = inner[comma + 1:].strip()
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label):
            raise ParseError("%s: bad label in %r" % (where, query))
        return inner[:comma]
    m = re.fullmatch(r"query_result\((.*)\)", q, re.S)
    if m:
        return m.group(1)
    if re.fullmatch(r"(label_names|metrics)\(.*\)", q, re.S):
        return None
    raise ParseError("%s: unknown variable query %r" % (where, query))


def dashboard_expressions(dashboard):
    """[(where, expr)]: every target's `expr` (in rows too) and the metric
    selector of every query variable."""
    out = []

    def panels(items, prefix):
        for p in items or []:
            title = "panel %r" % p.get("title", p.get("id"))
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append(("%s%s %s" % (prefix, title, t.get("refId", "")), t["expr"]))
            panels(p.get("panels"), prefix)

    panels(dashboard.get("panels"), "")
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query", "")
        where = "variable %r" % v.get("name")
        expr = _variable_expression(q or "", where)
        if expr is not None:
            out.append((where, expr))
    return out


# ---------------------------------------------------------------- exposition

def exposition_families(text):
    """{family: type} from the `# TYPE name type` lines of an exposition."""
    families = {}
    for line in text.split("\n"):
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "#" and parts[1] == "TYPE":
            families[parts[2]] = parts[3]
    return families


def exists(name, families, allow=()):
    """Whether `name` is a series name of one of `families` (or allowed)."""
    if name in allow or name in families:
        return True
    base, _, suffix = name.rpartition("_")
    if suffix == "bucket":
        return families.get(base) == "histogram"
    if suffix in ("sum", "count"):
        return families.get(base) in ("histogram", "summary")
    if suffix == "total":
        return families.get(base) == "counter"
    return False


def unknown_metrics(expressions, families, allow=()):
    """[(where, name)] for every name of `expressions` [(where, expr)] that
    does not exist, in input order."""
    out = []
    for where, expr in expressions:
        for name in sorted(metric_names(expr)):
            if not exists(name, families, allow):
                out.append((where, name))
    return out


def _read(source):
    if re.match(r"https?://", source):
        with urllib.request.urlopen(source, timeout=10) as resp:
            return resp.read().decode("utf-8")
    with open(source, encoding="utf-8") as f:
        return f.read()


def main(argv):
    args = argv[1:]
    exposition, rules, dashboards, allow = None, [], [], []
    i = 0
    while i < len(args):
        flag = args[i]
        if flag in ("--rules", "--dashboard", "--allow"):
            if i + 1 >= len(args):
                print("%s needs a value" % flag, file=sys.stderr)
                return 2
            {"--rules": rules, "--dashboard": dashboards, "--allow": allow}[flag].append(args[i + 1])
            i += 2
        elif flag.startswith("-") or exposition is not None:
            print(__doc__.split("\n\n")[1], file=sys.stderr)
            return 2
        else:
            exposition = flag
            i += 1
    if exposition is None or not (rules or dashboards):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        families = exposition_families(_read(exposition))
        if not families:
            raise ParseError("%s: no `# TYPE` lines" % exposition)
        expressions = []
        for path in rules:
            expressions += [("%s: %s" % (path, name), expr)
                            for name, expr in rule_expressions(_read(path), path)]
        for path in dashboards:
            expressions += [("%s: %s" % (path, where), expr)
                            for where, expr in dashboard_expressions(json.loads(_read(path)))]
        missing = unknown_metrics(expressions, families, allow)
        used = set().union(*(metric_names(e) for _, e in expressions)) if expressions else set()
    except (OSError, ValueError, ParseError) as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    for where, name in missing:
        print("%s: %s is not in %s" % (where, name, exposition))
    if missing:
        return 1
    print("ok: %d expressions name %d metrics, all among the %d families of %s%s"
          % (len(expressions), len(used), len(families), exposition,
             " (allowed: %s)" % ", ".join(allow) if allow else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
