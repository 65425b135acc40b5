#!/usr/bin/python3
"""Check fdpass's metrics (Prometheus's text format, on stdin) with a real parser.

Usage: prometheus_check.py [--doc FILE] [NAME=VALUE | NAME>=VALUE ...] < text

Parses the text with Debian's python3-prometheus-client (text_string_to_metric_families),
then checks the project's conventions: every family named fdpass_*, with a HELP text and a
TYPE, declared once; counters' samples end in _total; histogram buckets never decrease and the
+Inf bucket equals _count. With --doc, every family must be named in FILE (docs/SERVE.md's
Metrics section). Each NAME=VALUE compares the sum of the samples called NAME (over all their
labels) with VALUE; NAME>=VALUE asks for at least VALUE. Exit status: 0 good, 1 a check
failed (said on stderr), 77 no prometheus_client to parse with.
"""
import re
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("prometheus_check: no prometheus_client for this python3 "
          "(Debian's python3-prometheus-client)", file=sys.stderr)
    sys.exit(77)


def fail(msg):
    print("prometheus_check: " + msg, file=sys.stderr)
    sys.exit(1)


def main(argv):
    doc = None
    expect = []
    args = iter(argv)
    for a in args:
        if a == "--doc":
            doc = open(next(args), encoding="utf-8").read()
            continue
        m = re.fullmatch(r"([a-z_:][a-z0-9_:]*)(>=|=)([0-9.e+-]+)", a)
        if not m:
            fail("bad expectation: " + a)
        expect.append((m.group(1), m.group(2), float(m.group(3))))

    text = sys.stdin.read()
    if not text.endswith("\n"):
        fail("the text does not end with a newline (cut short?)")
    typed = re.findall(r"^# TYPE (\S+) ", text, re.M)
    helped = re.findall(r"^# HELP (\S+) ", text, re.M)
    for name in set(typed):
        if typed.count(name) != 1:
            fail("family %s is declared %d times" % (name, typed.count(name)))
    if sorted(typed) != sorted(helped):
        fail("HELP and TYPE lines do not name the same families")

    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser's own complaint is the message
        fail("the parser refused the text: %r" % (e,))
    if not families:
        fail("no metric at all")

    sums = {}
    for f in families:
        if not f.name.startswith("fdpass_"):
            fail("family %s lacks the fdpass_ prefix" % f.name)
        if not f.documentation:
            fail("family %s has no HELP text" % f.name)
        if f.type not in ("counter", "gauge", "histogram"):
            fail("family %s has type %s" % (f.name, f.type))
        if doc is not None and not re.search(r"\b%s(_total)?\b" % re.escape(f.name), doc):
            fail("family %s is not in the documentation" % f.name)
        for s in f.samples:
            if f.type == "counter" and not s.name.endswith("_total"):
                fail("counter sample %s does not end in _total" % s.name)
            if s.value < 0:
                fail("sample %s%s is negative" % (s.name, s.labels))
            sums[s.name] = sums.get(s.name, 0.0) + s.value
        if f.type == "histogram":
            buckets = [s for s in f.samples if s.name.endswith("_bucket")]
            counts = [s.value for s in buckets]
            if counts != sorted(counts):
                fail("histogram %s: buckets decrease" % f.name)
            if not buckets or buckets[-1].labels.get("le") != "+Inf":
                fail("histogram %s: no +Inf bucket last" % f.name)
            if buckets[-1].value != sums.get(f.name + "_count"):
                fail("histogram %s: +Inf bucket differs from _count" % f.name)

    for name, op, want in expect:
        got = sums.get(name)
        if got is None:
            fail("no sample named %s" % name)
        if (op == "=" and got != want) or (op == ">=" and got < want):
            fail("%s is %g, expected %s %g" % (name, got, op, want))
    print("prometheus_check: %d families parsed, conventions and %d expectations hold"
          % (len(families), len(expect)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
