"""sar-prompt data {check,download} DATASET --data DATA (see sar_prompt.data)."""
import argparse
import os
import sys

from sar_prompt.vocabulary import OneSpelling


def _data_root():
    """--data: required unless $SAR_PROMPT_DATA or $DATA names the folder."""
    from sar_prompt.vocabulary import env_help, setting

    root = setting("data")
    return dict(required=root is None, default=root,
                help=f"the folder that holds the datasets [{env_help('data')}]")


def build_parser():
    p = argparse.ArgumentParser(prog="python -m sar_prompt.data",
                                description="Check or download a base-to-new dataset.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="verify the layout, split, files and images of a dataset")
    c.add_argument("dataset", help="dataset key (dtd, imagenet, ...) or registry name")
    c.add_argument("--data", "--root", dest="root", metavar="DATA", action=OneSpelling,
                   **_data_root())
    c.add_argument("--deep", action="store_true",
                   help="decode every image in full (slower) instead of header + end marker")
    c.add_argument("--shots", type=int, default=16,
                   help="warn about classes with fewer training images than this [16]")
    d = sub.add_parser("download", help="fetch, verify and unpack what has a public link")
    d.add_argument("dataset", help="dataset key (dtd, imagenet, ...) or registry name")
    d.add_argument("--data", "--root", dest="root", metavar="DATA", action=OneSpelling,
                   **_data_root())
    d.add_argument("--mirror", default=os.environ.get("SAR_PROMPT_DATA_MIRROR", ""),
                   help="base URL serving <key>/<file> instead of the official hosts "
                        "[$SAR_PROMPT_DATA_MIRROR]")
    d.add_argument("--keep-archives", action="store_true",
                   help="keep downloaded archives after unpacking them")
    return p


def main(argv=None):
    """Exit status, as every sar_prompt command: 0 done (the dataset is complete and sound),
    2 a problem you can fix (bad arguments, a broken dataset, manual steps left: the message
    or report says what to do), 130 interrupted, 1 anything unexpected."""
    from sar_prompt.errors import EXIT_OK, EXIT_USER, run_command

    args = build_parser().parse_args(argv)

    def command():
        if args.command == "check":
            from sar_prompt.data.doctor import check

            report = check(args.dataset, args.root, deep=args.deep, shots=args.shots)
            print(report.render())
            return EXIT_OK if report.ok else EXIT_USER
        from sar_prompt.data.download import download

        complete = download(args.dataset, args.root, mirror=args.mirror,
                            keep_archives=args.keep_archives) == 0
        return EXIT_OK if complete else EXIT_USER

    return run_command(command, interrupted="interrupted; a download resumes where it "
                                            "stopped when run again.")


if __name__ == "__main__":
    sys.exit(main())
