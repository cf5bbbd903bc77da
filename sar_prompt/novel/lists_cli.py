"""`sar-prompt novel`: make, cache and check novel-class lists.

    generate  --dataset KEY | --all    ask GPT-4o (or an OpenAI-compatible server) once
    vocab     --dataset KEY | --all    words from CLIP's own vocabulary (offline)
    wordnet   --dataset KEY | --all    WordNet relatives of the base classes (offline; nltk)
    from-file NAMES.txt --dataset KEY  a list you wrote, one name per line
    validate  FILE...                  check lists against the schema and the class lists
"""
import argparse
import time
from dataclasses import asdict
from pathlib import Path

from sar_prompt.errors import EXIT_OK, EXIT_USER, NovelClassesError, SarPromptError, run_command
from sar_prompt.novel import shipped_dir
from sar_prompt.novel import build
from sar_prompt.novel import facts as facts_mod
from sar_prompt.novel.clean import MAX_CONTEXT_TOKENS, MAX_WORDS
from sar_prompt.vocabulary import OneSpelling

# Tools write here, relative to the working directory; the trainers keep reading the lists
# shipped in the package unless TRAINER.SAR.NOVEL_FILE names another file. In a checkout,
# run from the repository root, this is the repository's own novel_classes/ (the shipped
# lists of an editable install).
OUTPUT_DIR = "novel_classes"


def _use_output():
    return (f"The trainers read the lists shipped with sar_prompt ({shipped_dir()}) unless "
            "TRAINER.SAR.NOVEL_FILE names another file: to train with a list written here, "
            "pass it as TRAINER.SAR.NOVEL_FILE.")


EXCLUDE_NEW_HELP = (
    "drop names equal to the dataset's held-out new (test) classes. Default: keep them, as "
    "the paper's protocol does; either way they are counted, listed in the file's audit and "
    "printed")
VALIDATION = (f"Every list is validated the same way: names are stripped and normalised; "
              f"secrets (never recorded), non-printable text, what is not a plausible class "
              f"name (markup, URLs, instructions or sentences, over {MAX_WORDS} words), "
              f"duplicates (case and punctuation ignored), base classes and names that do not "
              f"fit CLIP's 77 tokens (in the dataset's template, and in the learnable prompt "
              f"with {MAX_CONTEXT_TOKENS} context tokens) are dropped and reported.")


def _dataset_args(p, many=True):
    if many:
        group = p.add_mutually_exclusive_group(required=True)
        group.add_argument("--dataset", action="append", metavar="KEY",
                           help=f"dataset key (repeatable): {', '.join(facts_mod.known_keys())}")
        group.add_argument("--datasets", dest="dataset", action="extend", nargs="+",
                           metavar="KEY", help="dataset keys (the same as --dataset, repeated)")
        group.add_argument("--all", action="store_true",
                           help="all 11 datasets of the base-to-new benchmark")
        p.add_argument("--output", "--out-dir", "--out", dest="out_dir", type=Path, default=None,
                       action=OneSpelling,
                       help=f"where <key>.json goes (default: {OUTPUT_DIR}/ in the working "
                            f"directory, never the installed package). {_use_output()}")
    p.add_argument("--exclude-new", action="store_true", help=EXCLUDE_NEW_HELP)
    p.add_argument("--force", action="store_true",
                   help="replace an existing file (default: keep it and say so)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m sar_prompt.novel", description=__doc__.split("\n\n")[0],
        epilog=VALIDATION + f" generate, vocab, wordnet and from-file write to {OUTPUT_DIR}/ in "
               "the working directory (or --output), never into the installed "
               "package. " + _use_output() + " See docs/novel_classes.md.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="ask GPT-4o (or any OpenAI-compatible server)",
                       description="Ask an OpenAI-compatible chat model once per dataset for "
                                   "class names related to its base classes, and cache the "
                                   "validated answer. The key is read from OPENAI_API_KEY only. "
                                   + VALIDATION)
    _dataset_args(g)
    g.add_argument("--model", default="gpt-4o", help="model name (default: gpt-4o)")
    g.add_argument("--base-url", default=None,
                   help="an OpenAI-compatible server, e.g. http://localhost:8000/v1 (default: "
                        "$OPENAI_BASE_URL, else https://api.openai.com/v1)")
    g.add_argument("--num-names", type=int, default=200, help="names to ask for (default 200)")
    g.add_argument("--temperature", type=float, default=0.0, help="sampling temperature "
                   "(default 0, for repeatability)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed sent with the request "
                   "(best-effort on OpenAI's side; default 0)")
    g.add_argument("--response-format", choices=["json_schema", "json_object"],
                   default="json_schema", help="structured output (default) or plain JSON mode "
                   "for servers without structured outputs")
    g.add_argument("--timeout", type=float, default=120.0, help="seconds per request (120)")
    g.add_argument("--retries", type=int, default=5, help="retries on 429, 5xx, timeouts, "
                   "dropped connections and malformed answers (default 5); a refused "
                   "connection or an unknown host fails at once")
    g.add_argument("--backoff", type=float, default=2.0, help="first retry delay in seconds; "
                   "doubles each retry, capped at 60 (default 2)")

    for name, what in (("vocab", "words from CLIP's BPE vocabulary (offline, no key)"),
                       ("wordnet", "WordNet relatives of the base classes (needs nltk and its "
                                   "wordnet data)")):
        v = sub.add_parser(name, help=what, description=f"Novel classes from {what}. "
                                                        + VALIDATION)
        _dataset_args(v)
        v.add_argument("--num-names", type=int, default=200, help="names to keep (default 200)")
        v.add_argument("--seed", type=int, default=0, help="shuffling seed (default 0)")

    f = sub.add_parser("from-file", help="a plain-text list, one name per line",
                       description="Make a novel-class file from a UTF-8 text file with one "
                                   "name per line ('#' comments and blank lines skipped). "
                                   + VALIDATION)
    f.add_argument("names_file", type=Path, metavar="NAMES.txt")
    f.add_argument("--dataset", required=True, metavar="KEY",
                   help=f"dataset key: {', '.join(facts_mod.known_keys())}")
    f.add_argument("--output", "--out", dest="out", type=Path, default=None,
                   action=OneSpelling,
                   help=f"output file (default: {OUTPUT_DIR}/<key>.json in the working "
                        f"directory, never the installed package). {_use_output()}")
    f.add_argument("--source", choices=["file", "manual"], default="file",
                   help="provenance source: 'file' (default), or 'manual' for a list written "
                        "by hand for this dataset (then --description is required)")
    f.add_argument("--description", default=None,
                   help="who made the list and how; recorded in the provenance")
    _dataset_args(f, many=False)

    c = sub.add_parser("validate", help="check novel-class files",
                       description="Check files against the schema and, for datasets with a "
                                   "bundled class list, against base classes, new classes and "
                                   "CLIP's token limit. A file named <dataset key>.json must be "
                                   "for that dataset. Exit status 2 if any has problems.")
    c.add_argument("files", type=Path, nargs="+", metavar="FILE")
    c.add_argument("--dataset", metavar="KEY", default=None,
                   help="the dataset the files are meant for: a list made for another one is "
                        f"a problem ({', '.join(facts_mod.known_keys())})")
    return parser


def _keys(args):
    return facts_mod.all_keys() if args.all else list(dict.fromkeys(args.dataset))


def _out_dir(args):
    return args.out_dir if args.out_dir is not None else Path(OUTPUT_DIR)


def _positive(value, flag):
    if value <= 0:
        raise NovelClassesError(f"{flag} must be positive (got {value}).")


def _check_writable(out_dir, keys):
    """The output folder must take files, and no list's path may be a folder."""
    from sar_prompt.errors import os_error_message
    from sar_prompt.io import check_writable_folder

    out_dir = Path(out_dir)
    try:
        check_writable_folder(out_dir)
    except OSError as exc:
        message = os_error_message(exc)
        if message is None:
            raise
        raise NovelClassesError(f"--output {out_dir}: {message} Nothing was asked of the "
                                "model (no request is paid for).") from exc
    for key in keys:
        target = out_dir / f"{key}.json"
        if target.is_dir():
            raise NovelClassesError(f"{target} is a folder, where the list for {key} goes. "
                                    "Move it away or choose another --output; nothing was "
                                    "asked of the model.")


def cmd_generate(args, sleep, log):
    from sar_prompt.novel.llm import Client, Request, Retry, public_url

    _positive(args.num_names, "--num-names")
    _positive(args.timeout, "--timeout")
    if args.retries < 0 or args.backoff < 0:
        raise NovelClassesError("--retries and --backoff must not be negative.")
    keys = _keys(args)
    for key in keys:  # unknown keys fail before the API key is even read
        facts_mod.dataset_facts(key)
    todo = [k for k in keys if args.force or not (_out_dir(args) / f"{k}.json").exists()]
    if todo:
        _check_writable(_out_dir(args), todo)  # before any request is paid for
    request = Request(model=args.model, num_names=args.num_names, temperature=args.temperature,
                      seed=args.seed, response_format=args.response_format)
    client = Client(args.base_url, Retry(timeout=args.timeout, max_retries=args.retries,
                                         backoff=args.backoff), sleep=sleep, log=log)
    log(f"asking {args.model} at {public_url(client.base_url)} (key from OPENAI_API_KEY) for "
        f"{args.num_names} names per dataset; new classes "
        f"{'excluded' if args.exclude_new else 'kept (paper protocol)'}")

    def produce(facts):
        names, details = client.ask(facts, request)
        provenance = {
            "source": "llm",
            "description": (
                f"Asked {details['model'] or args.model} once, through {details['base_url']}, "
                f"for {args.num_names} class names related to but not among the "
                f"{len(facts.base)} base classes of {facts.name} (prompt template "
                f"v{details['prompt']['version']}); the answer was validated by "
                "sar_prompt.novel (see 'audit')."),
            **details}
        return build.make_list(facts, names, provenance, args.exclude_new,
                               secrets=client.secrets(), cap=args.num_names)

    params = {"source": "llm", "request": asdict(request),
              "base_url": public_url(client.base_url), "exclude_new": args.exclude_new}
    build.run(keys, produce, _out_dir(args), args.force, params, log)


def cmd_offline(args, sleep, log):
    from sar_prompt.novel import sources

    _positive(args.num_names, "--num-names")
    keys = _keys(args)
    if args.command == "wordnet":
        sources.load_wordnet()  # say it is unavailable before anything else
    else:
        vocab = sources.vocab_names(args.seed)

    def produce(facts):
        if args.command == "vocab":
            candidates, details = vocab
            description = ("Words drawn at random from OpenAI CLIP's BPE vocabulary (see "
                           "'filter'; unrelated to the dataset by construction), the first "
                           f"{args.num_names} that pass sar_prompt.novel's validation.")
        else:
            candidates, details = sources.wordnet_names(facts.base, args.seed)
            description = ("WordNet nouns related to the base classes of "
                           f"{facts.name} (see 'method'), the first {args.num_names} that pass "
                           "sar_prompt.novel's validation.")
        provenance = {"source": args.command, "description": description,
                      "num_names": args.num_names, **details}
        return build.make_list(facts, candidates, provenance, args.exclude_new,
                               limit=args.num_names)

    params = {"source": args.command, "seed": args.seed, "num_names": args.num_names,
              "exclude_new": args.exclude_new}
    build.run(keys, produce, _out_dir(args), args.force, params, log)


def cmd_from_file(args, sleep, log):
    from sar_prompt.novel import sources

    facts = facts_mod.dataset_facts(args.dataset)
    if args.source == "manual" and not args.description:
        raise NovelClassesError("--source manual needs --description saying who wrote the list "
                             "and how.")
    out = args.out or Path(OUTPUT_DIR) / f"{args.dataset}.json"
    if out.exists() and not args.force:
        raise NovelClassesError(f"{out} exists; pass --force to replace it, or --out PATH.")
    names, details = sources.read_names_file(args.names_file)
    description = args.description or (f"Names from the text file {details['file']}, "
                                       "validated by sar_prompt.novel (see 'audit').")
    provenance = {"source": args.source, "description": description, **details}
    result, cleaned = build.make_list(facts, names, provenance, args.exclude_new)
    build.write_list(result, out)
    log(f"{args.dataset}: {cleaned.summary()} -> {out}")
    if cleaned.new_overlap:
        log(f"  held-out new classes in the list: {', '.join(cleaned.new_overlap)}")


def cmd_validate(args, sleep, log):
    if args.dataset is not None:
        facts_mod.dataset_facts(args.dataset)  # an unknown key fails before any file is read
    failed = 0
    for path in args.files:
        try:
            problems = build.check_file(path, log, dataset_key=args.dataset)
        except SarPromptError as exc:
            log(f"{path}: INVALID: {exc}")
            problems = [exc]
        failed += bool(problems)
    if failed:
        log(f"{failed} of {len(args.files)} file(s) have problems.")
        return EXIT_USER
    return EXIT_OK


COMMANDS = {"generate": cmd_generate, "vocab": cmd_offline, "wordnet": cmd_offline,
            "from-file": cmd_from_file, "validate": cmd_validate}


def main(argv=None, sleep=time.sleep, log=None):
    """Exit status, as every sar_prompt command: 0 done, 2 bad input or a failed check (a
    message says what and how to fix it), 130 interrupted, 1 anything unexpected."""
    log = log or (lambda msg: print(msg, flush=True))
    args = build_parser().parse_args(argv)
    return run_command(lambda: COMMANDS[args.command](args, sleep, log),
                       interrupted="interrupted; every finished file is kept. Run the same "
                                   "command again to resume.")
