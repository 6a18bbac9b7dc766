"""PromQL as the deploy checks read it: Grafana variables and vector selectors.

Shared by check_grafana.sh (structure checks) and observability_test.py (every
query against a real Prometheus). A reader for the expressions vmlab ships,
not a PromQL parser: promtool parses them for real.
"""
import re

# $name or ${name} / ${name:format}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan", "atan2"}


def variables(expr):
    """The names of the Grafana variables in `expr`."""
    return [m.group(1) or m.group(2) for m in VARIABLE.finditer(expr)]


def substitute(expr, values):
    """`expr` with each variable in `values` replaced; others are left as they are."""
    return VARIABLE.sub(lambda m: values.get(m.group(1) or m.group(2), m.group(0)), expr)


def selectors(expr):
    """(metric name, its {matchers} text or None) for each vector selector of `expr`."""
    # Mask string literals, then {..} and [..] contents, keeping offsets.
    masked = re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', expr)
    masked = re.sub(r"\{[^}]*\}", lambda m: "{" + " " * (len(m.group(0)) - 2) + "}", masked)
    masked = re.sub(r"\[[^\]]*\]", lambda m: "[" + " " * (len(m.group(0)) - 2) + "]", masked)
    masked = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
                    lambda m: " " * len(m.group(0)), masked)
    out = []
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)", masked):
        name = m.group(1)
        rest = masked[m.end():]
        if re.match(r"\s*\(", rest) or name in KEYWORDS:
            continue  # a function or keyword
        b = re.match(r"\s*\{", rest)
        if b:
            start = m.end() + b.end() - 1
            end = masked.index("}", start)
            out.append((name, expr[start + 1:end]))
        else:
            out.append((name, None))
    return out


def metric_names(expr):
    """The metric names `expr` reads."""
    return {name for name, _ in selectors(expr)}
