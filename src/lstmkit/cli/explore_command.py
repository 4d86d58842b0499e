"""``lstmkit explore --run DIR``: the gate explorer on a trained run's held-out set (:mod:`lstmkit.explorer`).

Serving needs the ``explore`` extra (Starlette, uvicorn) and reading a run the ``lab`` extra; a missing one is one
line and exit status 2, like the lab's commands. ``--export page.html`` writes one self-contained file instead
of serving, and needs only the lab extra.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .extras import require_lab_extra
from .types import non_negative_int, positive_int
from .usage import UsageError


def explore_parser(sub) -> Callable:
    p = sub.add_parser("explore", help="the gate explorer: a run's gates and cell state in the browser",
                       description="Serve a page (127.0.0.1) that shows a trained run's gates, cell state and output "
                                   "on its task's held-out sequences: heatmaps, select and match, interventions, "
                                   "two runs side by side. Or write it as one HTML file with --export.")
    p.add_argument("--run", required=True, help="a run folder written by lstmkit train")
    p.add_argument("--compare", default=None, metavar="DIR",
                   help="a second run folder of the same task and length, shown side by side")
    p.add_argument("--port", type=non_negative_int, default=None, help="port to serve on (default: a free one)")
    p.add_argument("--no-browser", dest="browser", action="store_false", help="do not open a browser")
    p.add_argument("--export", default=None, metavar="PAGE.html",
                   help="write one self-contained HTML file (no server; no intervention) and exit")
    p.add_argument("--sequences", type=positive_int, default=None,
                   help="held-out sequences to load (default: all when serving, 32 with --export)")
    p.add_argument("--explain", default=None, metavar="FILE",
                   help="an explain.json whose unit ranking the page offers as an order (default: "
                        "RUN/explain/explain.json when lstmkit explain wrote one)")
    return _run_explore


def _require_explore_extra(command: str) -> None:
    from ..explorer import require_extra

    try:
        require_extra(f"lstmkit {command}")
    except ImportError as err:
        raise UsageError(str(err)) from None


def _run_explore(args: argparse.Namespace) -> int:
    require_lab_extra(args.command)
    if args.export is None:
        _require_explore_extra(args.command)
    from ..explorer import from_run
    from ..explorer.subject import check_comparable

    subjects = [from_run(args.run, max_sequences=args.sequences, explain=args.explain)]
    if args.compare is not None:
        subjects.append(from_run(args.compare, max_sequences=args.sequences))
        check_comparable(*subjects)
    if args.export is not None:
        from ..explorer.export import export

        path = export(subjects, args.export, sequences=args.sequences or 32)
        print(f"wrote {path}")
        return 0
    import webbrowser

    from ..explorer.server import Explorer

    explorer = Explorer(subjects, port=args.port)
    print(f"lstmkit explorer at {explorer.url} (Ctrl-C stops it)", flush=True)
    if args.browser:
        webbrowser.open(explorer.url)
    try:
        explorer.wait()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        explorer.stop()
    return 0
