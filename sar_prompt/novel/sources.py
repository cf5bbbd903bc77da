"""Offline sources of candidate names: a user's text file, CLIP's own BPE vocabulary, WordNet.

Each returns (candidates, provenance details); `build` cleans the candidates like any
other source's, so the rules for what is kept are the same everywhere.
"""
import hashlib
import random
import re
from pathlib import Path

from sar_prompt.errors import NovelClassesError

# --- file -----------------------------------------------------------------------------------


def read_names_file(path):
    """Names from a UTF-8 text file, one per line; blank lines and '#' comments are skipped."""
    path = Path(path)
    if not path.is_file():
        raise NovelClassesError(f"{path}: no such file. Give a UTF-8 text file with one class "
                                "name per line.")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NovelClassesError(f"{path} is not UTF-8 text ({exc}); save it as UTF-8.") from exc
    names = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not names:
        raise NovelClassesError(f"{path} has no names (blank lines and '#' comments are "
                                "skipped); write one class name per line.")
    details = {"file": path.name, "file_sha256": hashlib.sha256(data).hexdigest(),
               "lines": len(names)}
    return names, details


# --- CLIP vocabulary ------------------------------------------------------------------------

# Function words and other frequent non-nouns that the filter below would otherwise keep.
STOPWORDS = frozenset("""
about above across after again against almost along already also although always among and
another any anybody anyone anything anyway anywhere around because been before behind being
below beside besides between beyond both but cannot could does doing done down during each
either else enough even ever every everyone everything except few first for from further had
has have having hence her here hers herself him himself his how however into its itself just
last least less like made make many may maybe might mine more most much must myself near
need neither never next none nor not nothing now off often once one only onto other others
ought our ours ourselves out over own perhaps quite rather really same several shall she
should since some somebody someone something sometimes somewhere still such than that the
their theirs them themselves then there therefore these they thing things this those though
through thus till too toward towards under unless until upon very was were what whatever when
whenever where whether which while who whoever whom whose why will with within without would
yet you your yours yourself yourselves
""".split())

VOCAB_FILTER = ("whole-word tokens of CLIP's BPE vocabulary (entries ending in '</w>') made "
                "of 4 to 12 ASCII lower-case letters, with a vowel (a, e, i, o or u), no "
                "letter three times in a row, not a function word from "
                "sar_prompt.novel.sources.STOPWORDS, and not the ending of a longer whole-word "
                "token (that drops word-final fragments such as 'tion' or 'ffice'); taken in "
                "vocabulary order, shuffled with random.Random(seed)")
_WORD = re.compile(r"[a-z]{4,12}")


def vocab_candidates():
    """Every word of CLIP's vocabulary that passes VOCAB_FILTER, in vocabulary order."""
    from sar_prompt.modeling.bpe import bpe

    encoder = bpe().encoder  # token -> id; ids follow BPE merge order, frequent words first
    whole = [t[:-4] for t, _ in sorted(encoder.items(), key=lambda kv: kv[1])
             if t.endswith("</w>") and t[:-4].isalpha()]
    # A piece that only ever ends longer words ("tion", "ffice") is a whole-word token too.
    endings = {w[k:] for w in whole for k in range(1, len(w) - 3)}
    return [w for w in whole
            if _WORD.fullmatch(w) and re.search(r"[aeiou]", w) and not re.search(r"(.)\1\1", w)
            and w not in STOPWORDS and w not in endings]


def vocab_file_sha256():
    from sar_prompt.modeling.bpe import vocabulary_path

    path = vocabulary_path()
    return path.name, hashlib.sha256(path.read_bytes()).hexdigest()


def vocab_names(seed):
    """CLIP-vocabulary words in a seeded random order (the caller keeps the first N that
    pass validation), with provenance details."""
    words = vocab_candidates()
    random.Random(seed).shuffle(words)
    vocab_file, digest = vocab_file_sha256()
    details = {"seed": seed, "filter": VOCAB_FILTER, "candidates": len(words),
               "vocabulary": f"{vocab_file} (OpenAI CLIP's BPE vocabulary, shipped with the "
                             "`clip` package)", "vocabulary_sha256": digest}
    return words, details


# --- WordNet --------------------------------------------------------------------------------

WORDNET_METHOD = ("for each base class name found as a WordNet noun (its first, most common "
                  "sense): the first lemma of each sibling synset (other hyponyms of its "
                  "hypernyms) and of each of its own hyponyms; collected in base-class order, "
                  "shuffled with random.Random(seed)")

WORDNET_MISSING = ("The WordNet source needs nltk and its WordNet data, and {what}. Install "
                   "them with `pip install nltk` and `python -m nltk.downloader wordnet` (or "
                   "point NLTK_DATA at a folder holding corpora/wordnet), or use another "
                   "source: `vocab` (offline, CLIP's vocabulary) or `from-file`.")


def load_wordnet():
    """nltk's WordNet reader, or a NovelClassesError that says what is missing."""
    try:
        from nltk.corpus import wordnet
    except ImportError:
        raise NovelClassesError(WORDNET_MISSING.format(what="nltk is not installed")) from None
    try:
        wordnet.ensure_loaded()  # nltk loads corpora lazily; a missing corpus shows up here
    except LookupError:
        raise NovelClassesError(WORDNET_MISSING.format(
            what="nltk is installed but its WordNet data was not found")) from None
    return wordnet


def wordnet_names(base, seed):
    """Names related to `base` through WordNet's noun hierarchy (WORDNET_METHOD)."""
    wn = load_wordnet()
    candidates, matched = [], 0
    for name in base:
        synsets = wn.synsets(name.strip().replace(" ", "_"), pos=wn.NOUN)
        if not synsets:
            continue
        matched += 1
        sense = synsets[0]
        related = [s for h in sense.hypernyms() for s in h.hyponyms() if s != sense]
        related += sense.hyponyms()
        for synset in related:
            candidates.append(synset.lemma_names()[0].replace("_", " "))
    if not candidates:
        raise NovelClassesError(f"WordNet knows none of the {len(base)} base class names as a "
                                "noun with relatives; use another source (vocab, from-file).")
    random.Random(seed).shuffle(candidates)
    import nltk

    details = {"seed": seed, "method": WORDNET_METHOD, "candidates": len(candidates),
               "base_classes_found": matched, "nltk_version": getattr(nltk, "__version__", "?"),
               "wordnet_version": str(wn.get_version())}
    return candidates, details
