"""`python -m analysis <experiment>`: build summary.html for a finished sweep and print its path."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

from cnn.data import DATA_DIR_SETTING  # noqa: E402
from jobs.arguments import ArgumentParser  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m analysis", description=__doc__)
    parser.add_argument("experiment", help="the sweep's experiment folder (holding trials.csv, epochs.csv, "
                                           "sweep.json), or its s3:// / gs:// URI")
    parser.add_argument("--data-dir", default=None,
                        help=f"folder holding <dataset>.npz for the test images (default: the {DATA_DIR_SETTING} "
                             "setting, then Keras' download)")
    parser.add_argument("--out", default=None,
                        help="folder (or URI) for the report, default <experiment>/analysis; use it when the "
                             "experiment's storage is read-only")
    args = parser.parse_args(argv)

    from analysis.report import build_report

    try:
        path = build_report(args.experiment, data_dir=args.data_dir, out=args.out)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)
    except OSError as error:
        print(f"error: cannot write the report ({str(error).splitlines()[0][:300]}); "
              "choose a writable folder with --out", file=sys.stderr)
        raise SystemExit(2)
    print(path)


if __name__ == "__main__":
    main()
