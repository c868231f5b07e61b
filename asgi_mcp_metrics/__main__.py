"""``python -m asgi_mcp_metrics dashboard|rules|servicemonitor|podmonitor``: the production kit.

Everything is generated from the metric catalog; the metric-name prefix comes from
``--namespace`` or else from the library's own settings (``ASGI_MCP_METRICS_NAMESPACE``,
``[tool.asgi_mcp_metrics]`` in pyproject.toml), so a project's namespace is picked up without
flags.  Output goes to stdout (or ``--output``) and is the same bytes for the same input.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import Settings
from .kit import dashboard, kubernetes, rules


def _pairs(values: Sequence[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"expected key=value, got {value!r}")
        pairs[key] = val
    return pairs


def _selector(args: argparse.Namespace) -> tuple[str, ...]:
    matchers = list(args.selector or ())
    if getattr(args, "job", None):
        matchers.insert(0, f'job="{args.job}"')
    return tuple(matchers)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asgi_mcp_metrics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--namespace", default=None,
                         help="metric-name prefix (default: the library's `namespace` setting)")
        sub.add_argument("--output", "-o", type=Path, help="write here instead of stdout")

    board = commands.add_parser("dashboard", help="Grafana dashboard JSON")
    common(board)
    board.add_argument("--title", default=dashboard.DashboardOptions.title)
    board.add_argument("--uid", default="")
    board.add_argument("--refresh", default=dashboard.DashboardOptions.refresh)

    rule = commands.add_parser("rules", help="Prometheus recording and alerting rules")
    common(rule)
    rule.add_argument("--format", choices=("prometheus", "prometheusrule"),
                      default="prometheus",
                      help="a rule file, or a prometheus-operator PrometheusRule")
    rule.add_argument("--job", help='restrict every rule to job="JOB"')
    rule.add_argument("--selector", action="append", metavar="MATCHER",
                      help='extra label matcher for every series, e.g. env="prod" (repeatable)')
    rule.add_argument("--for", dest="for_all", metavar="DURATION",
                      help="one `for:` duration for every alert (overrides the --*-for options)")
    rule.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                      help="PrometheusRule metadata label (repeatable)")
    defaults = rules.RuleOptions()
    for option in dataclasses.fields(rules.RuleOptions):
        if option.name in ("namespace", "selector", "labels", "runbook_url"):
            continue
        value = getattr(defaults, option.name)
        flag = "--" + option.name.replace("_", "-")
        if option.name == "k8s_namespace":
            flag = "--k8s-namespace"
        rule.add_argument(flag, dest=option.name, type=type(value), default=value,
                          help=f"(default: {value})")
    rule.add_argument("--runbook-url", default=defaults.runbook_url)

    for kind in ("servicemonitor", "podmonitor"):
        monitor = commands.add_parser(kind, help=f"prometheus-operator {kind}")
        monitor.add_argument("--output", "-o", type=Path)
        monitor.add_argument("--service", required=True,
                             help="monitor name; selects pods/services labelled app=SERVICE")
        monitor.add_argument("--port", default="http", help="named port serving /metrics")
        monitor.add_argument("--path", default="/metrics")
        monitor.add_argument("--interval", default="30s")
        monitor.add_argument("--k8s-namespace", default="")
        monitor.add_argument("--match-label", action="append", default=[], metavar="KEY=VALUE",
                             help="select by these labels instead of app=SERVICE")
        monitor.add_argument("--variant-pod-label", default="variant",
                             help="pod label relabelled into the `variant` target label")
        monitor.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    return parser


def render(argv: Sequence[str] | None = None) -> tuple[str, Path | None]:
    args = _parser().parse_args(argv)
    namespace = getattr(args, "namespace", None)
    if namespace is None and args.command in ("dashboard", "rules"):
        namespace = Settings.load().namespace
    if args.command == "dashboard":
        text = dashboard.render(dashboard.DashboardOptions(
            namespace=namespace or "", title=args.title, uid=args.uid, refresh=args.refresh))
    elif args.command == "rules":
        fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(rules.RuleOptions)
                  if hasattr(args, f.name) and f.name not in ("namespace", "selector", "labels")}
        options = rules.RuleOptions(namespace=namespace or "", selector=_selector(args),
                                    labels=_pairs(args.label), **fields)
        if args.for_all:
            options = options.with_for(args.for_all)
        text = rules.render(options, fmt=args.format)
    else:
        text = kubernetes.render(kubernetes.MonitorOptions(
            service=args.service, port=args.port, path=args.path, interval=args.interval,
            k8s_namespace=args.k8s_namespace, match_labels=_pairs(args.match_label),
            variant_pod_label=args.variant_pod_label, labels=_pairs(args.label)), args.command)
    return text, args.output


def main(argv: Sequence[str] | None = None) -> int:
    text, output = render(argv)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
