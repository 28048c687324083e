"""``synapse-bmz evaluate-partners``: argument parsing only (the work is
`synapse_bmz.partners.evaluate_partner_files`).

Wired into `synapse_bmz.cli` by ``add_evaluate_partners_parser(sub)`` next to
the other sub-parsers and ``cmd_evaluate_partners(a)`` in the dispatch.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence


def add_evaluate_partners_parser(sub) -> argparse.ArgumentParser:
    """Add the ``evaluate-partners`` sub-command to an ``add_subparsers()`` object."""
    e = sub.add_parser("evaluate-partners", help="partner precision / recall / F-score (Synful, CREMI)")
    e.add_argument("pred", help="predicted partners (.csv, .parquet or .json)")
    e.add_argument("gt", help="ground-truth partners (.csv, .parquet or .json)")
    e.add_argument("-o", "--output", help="write the scores as JSON here")
    e.add_argument("--max-distance-nm", type=float, default=400.0, help="matching threshold in nm (default 400)")
    e.add_argument("--match-on", choices=["both", "pre", "post"], default="both",
                   help="sites the threshold is measured on (default both)")
    ids = e.add_mutually_exclusive_group()
    ids.add_argument("--neuron-ids", dest="use_neuron_ids", action="store_true", default=None,
                     help="match only agreeing (pre_id, post_id) pairs (default: when both tables have ids)")
    ids.add_argument("--no-neuron-ids", dest="use_neuron_ids", action="store_false", help="ignore neuron ids")
    e.add_argument("--drop-same-neuron", action="store_true", help="drop predictions with pre_id == post_id")
    e.add_argument("--merge-radius-nm", type=float, default=None,
                   help="merge predictions of one neuron pair within this radius, keeping the highest score")
    e.add_argument("--ignore-segment-ids", default="", help="comma-separated ids whose partners are left out")
    e.add_argument("--neurons", default=None,
                   help="file of neuron ids: evaluate neuron by neuron over them and sum TP/FP/FN")
    e.add_argument("--direction", choices=["both", "input", "output"], default="both",
                   help="with --neurons: each neuron's input, output or all synapses")
    e.add_argument("--sweep", action="store_true", help="add a precision-recall curve over score thresholds")
    return e


def _ids(text: str, option: str) -> list:
    from .errors import OptionError

    try:
        return [int(float(t)) for t in text.replace(",", " ").split()]
    except ValueError:
        raise OptionError(option, f"expected comma-separated integer ids, got {text!r}") from None


def cmd_evaluate_partners(a: argparse.Namespace) -> int:
    """Print precision, recall and F-score on one line; JSON with ``-o``. Exit status 0."""
    from .partners import evaluate_partner_files

    res = evaluate_partner_files(
        a.pred, a.gt, out=a.output, max_distance_nm=a.max_distance_nm, match_on=a.match_on,
        use_neuron_ids=a.use_neuron_ids, drop_same_neuron=a.drop_same_neuron, merge_radius_nm=a.merge_radius_nm,
        ignore_segment_ids=_ids(a.ignore_segment_ids, "--ignore-segment-ids"), neurons_file=a.neurons,
        direction=a.direction, sweep=a.sweep)
    print(f"precision {res['precision']:.4f}  recall {res['recall']:.4f}  f-score {res['f_score']:.4f}  "
          f"(tp {res['tp']}, fp {res['fp']}, fn {res['fn']})")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Stand-alone entry (``python -m synapse_bmz.partners_cli evaluate-partners ...``) with the
    CLI's error convention: a `SynapseBmzError` is one line on stderr and exit status 2."""
    import sys

    from .errors import SynapseBmzError

    parser = argparse.ArgumentParser(prog="synapse-bmz")
    add_evaluate_partners_parser(parser.add_subparsers(dest="command", required=True))
    a = parser.parse_args(argv)
    try:
        return cmd_evaluate_partners(a)
    except SynapseBmzError as e:
        print(f"synapse-bmz: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["add_evaluate_partners_parser", "cmd_evaluate_partners", "main"]
