"""`tinygpt4 report RUN_DIR`: write RUN_DIR/report/report.md and index.html with their figures."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="write the technical report of a run",
        description="Write RUN_DIR/report/report.md and index.html (figures as PNG files beside them) from "
                    "the run's files. Sections whose files are missing are left out.",
    )
    p.add_argument("run_dir", help="a run folder (what `tinygpt4 run --out DIR` creates)")
    p.add_argument("--out", help="write the report here instead of RUN_DIR/report")
    p.set_defaults(func=_run)


def _run(args) -> int:
    # imported here: the report pulls in torch and matplotlib, and every command's parser imports this module
    from tinygpt4.report.build import build_report

    path = build_report(args.run_dir, args.out)
    print(f"wrote {path} and {path.with_name('report.md')}")
    return 0
