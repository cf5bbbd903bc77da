"""Asking GPT-4o (or any OpenAI-compatible chat server) for related class names, once.

The prompt is a versioned template file (prompts/novel_classes_v<N>.txt); the answer must be
the JSON object {"class_names": [...]}, asked for with a JSON schema (or plain JSON mode).
Retries are ours, not the client's, so their number and delays are explicit and testable:
429, 5xx, dropped connections, timeouts and answers that are not the asked JSON are retried
with exponential backoff; 401 and other client errors, a refused connection and an unknown
host name are not. The API key is read from
OPENAI_API_KEY only and never printed, logged or written: whatever the server or the model
sends back is redacted (any 8 characters of the key in a row, see redact.py) before it is
cut short, shown or recorded.
"""
import hashlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from importlib import resources
from string import Template
from urllib.parse import urlsplit, urlunsplit

from sar_prompt.errors import NovelClassesError
from sar_prompt.novel.redact import API_KEY_ENV, Secrets

PROMPT_VERSION = 1
DEFAULT_MODEL = "gpt-4o"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEY_ENV, BASE_URL_ENV = API_KEY_ENV, "OPENAI_BASE_URL"
KEY_MASK = f"[{KEY_ENV}]"
EXCERPT = 80  # characters of a bad answer shown (after redaction)

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"class_names": {"type": "array", "items": {"type": "string"}}},
    "required": ["class_names"],
    "additionalProperties": False,
}
RESPONSE_FORMATS = {
    "json_schema": {"type": "json_schema", "json_schema": {
        "name": "novel_class_names", "strict": True, "schema": ANSWER_SCHEMA}},
    "json_object": {"type": "json_object"},  # for servers without structured outputs
}


@dataclass
class Request:
    """What is sent, besides the prompt; recorded in the provenance as is."""
    model: str = DEFAULT_MODEL
    num_names: int = 200
    temperature: float = 0.0
    seed: int = 0  # OpenAI documents seeded sampling as best-effort determinism
    response_format: str = "json_schema"


@dataclass
class Retry:
    timeout: float = 120.0  # seconds per request
    max_retries: int = 5  # retries after the first attempt
    backoff: float = 2.0  # first delay; doubles each retry
    max_backoff: float = 60.0


# --- prompt ---------------------------------------------------------------------------------

def template_name(version=PROMPT_VERSION):
    return f"novel_classes_v{version}.txt"


def load_template(version=PROMPT_VERSION):
    """(text, sha256) of the prompt template file shipped in sar_prompt/novel/prompts/."""
    name = template_name(version)
    try:
        text = resources.files(__package__).joinpath("prompts", name).read_text("utf-8")
    except FileNotFoundError:
        raise NovelClassesError(f"prompt template {name} is missing from sar_prompt/novel/"
                                "prompts/; reinstall sar-prompt.") from None
    return text, hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_messages(facts, num_names, version=PROMPT_VERSION):
    """The chat messages for one dataset: template sections '### system' and '### user',
    '#' comment lines dropped, $placeholders filled."""
    text, _ = load_template(version)
    values = {"domain": facts.domain, "num_base": len(facts.base), "num_names": num_names,
              "base_classes": "\n".join(f"- {n.replace('_', ' ')}" for n in facts.base)}
    sections, current = {}, None
    for line in text.splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
            sections[current] = []
        elif current is not None and not line.startswith("#"):
            sections[current].append(line)
    if set(sections) != {"system", "user"}:
        raise NovelClassesError(f"prompt template {template_name(version)} must have exactly "
                                f"a '### system' and a '### user' section (has {sorted(sections)}).")
    return [{"role": role, "content": Template("\n".join(sections[role]).strip()).substitute(values)}
            for role in ("system", "user")]


# --- connection -----------------------------------------------------------------------------

def resolve_base_url(base_url=None):
    return (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")


def public_url(url):
    """`url` without user info, query or fragment: what may be printed and recorded."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def api_key():
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise NovelClassesError(
            f"{KEY_ENV} is not set. `generate` asks an OpenAI-compatible server and reads the "
            f"key from {KEY_ENV} only (for a local server that needs none, set it to any "
            "placeholder). Without a key, use an offline source: `sar-prompt novel "
            "vocab`, `wordnet` or `from-file`.")
    return key


class Client:
    """One OpenAI client for a whole run; `sleep` is injectable so tests need not wait."""

    def __init__(self, base_url=None, retry=None, sleep=time.sleep, log=print):
        import openai

        self.openai = openai
        self.base_url = resolve_base_url(base_url)
        self.retry = retry or Retry()
        self.sleep, self.log = sleep, log
        self._key = api_key()
        self._secret = Secrets([self._key], mask=KEY_MASK)
        # max_retries=0: the retry loop below is the only one, so its counts are exact.
        self.client = openai.OpenAI(api_key=self._key, base_url=self.base_url,
                                    timeout=self.retry.timeout, max_retries=0)

    def secrets(self):
        """What no name in an answer may hold (see clean.holds_secret)."""
        return [self._key]

    @property
    def provider(self):
        return "openai" if self.base_url == DEFAULT_BASE_URL else "openai-compatible"

    def _redact(self, text):
        return self._secret.redact(text)

    def ask(self, facts, request: Request):
        """(names as received, provenance details) for one dataset, or NovelClassesError."""
        messages = build_messages(facts, request.num_names)
        where = f"{facts.key}: {public_url(self.base_url)}"
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        last = None
        attempts = self.retry.max_retries + 1
        for attempt in range(1, attempts + 1):
            retry_after = None
            try:
                response = self.client.chat.completions.create(
                    model=request.model, messages=messages, temperature=request.temperature,
                    seed=request.seed, response_format=RESPONSE_FORMATS[request.response_format])
            except self.openai.AuthenticationError:
                raise NovelClassesError(
                    f"{where} answered 401 Unauthorized: it rejected the API key in "
                    f"{KEY_ENV}. Set {KEY_ENV} to a valid key for this server "
                    f"(and --base-url / {BASE_URL_ENV} to the right server).") from None
            except self.openai.APIStatusError as exc:
                status = exc.status_code
                message = self._redact(_server_message(exc))
                if status == 429 and _error_code(exc) == "insufficient_quota":
                    raise NovelClassesError(f"{where} answered 429 insufficient_quota: the "
                                            "account has no credit left; retrying will not "
                                            f"help. ({message})") from None
                if status != 429 and status < 500:
                    raise NovelClassesError(
                        f"{where} answered {status}: {message}. Check --model "
                        f"({request.model!r}) and --response-format ({request.response_format}; "
                        "servers without structured outputs need json_object).") from None
                last = f"HTTP {status}: {message}"
                retry_after = _retry_after(exc)
            except self.openai.APITimeoutError:
                last = f"no answer within --timeout {self.retry.timeout:g} s"
            except self.openai.APIConnectionError as exc:
                permanent = _permanent_connection_error(exc)
                if permanent:
                    raise NovelClassesError(
                        f"{where}: {permanent}. Check --base-url / {BASE_URL_ENV} (is the "
                        "server running, at that address and port?). Not retried: this is not "
                        "a passing fault.") from None
                last = f"connection failed ({self._redact(exc.__cause__ or exc)})"
            except self.openai.APIError as exc:
                last = f"unexpected response ({self._redact(exc)})"
            except json.JSONDecodeError as exc:  # an HTTP body labelled JSON that is not
                last = f"the response body is not JSON ({exc.msg})"
            else:
                for k in usage:  # a malformed answer costs tokens too
                    usage[k] += getattr(getattr(response, "usage", None), k, None) or 0
                try:
                    names = parse_answer(response, self._redact)
                except ValueError as exc:
                    last = f"the answer is not the asked JSON: {self._redact(exc)}"
                else:
                    details = {
                        "provider": self.provider, "base_url": public_url(self.base_url),
                        "model_requested": request.model, **self._secret.redact_json({
                            "model": response.model, "response_id": response.id,
                            "system_fingerprint": getattr(response, "system_fingerprint",
                                                          None)}),
                        "prompt": {"template": template_name(), "version": PROMPT_VERSION,
                                   "template_sha256": load_template()[1],
                                   "sha256": _messages_sha256(messages)},
                        "request": {**asdict(request), "timeout_s": self.retry.timeout,
                                    "max_retries": self.retry.max_retries},
                        "attempts": attempt, "usage": usage,
                    }
                    return names, details
            if attempt == attempts:
                break
            delay = min(self.retry.backoff * 2 ** (attempt - 1), self.retry.max_backoff)
            if retry_after is not None:
                delay = min(max(delay, retry_after), self.retry.max_backoff)
            self.log(f"  {facts.key}: attempt {attempt}/{attempts} failed ({last}); "
                     f"retrying in {delay:g} s")
            self.sleep(delay)
        raise NovelClassesError(f"{where}: gave up after {attempts} attempts; last: {last}. "
                                "Try again later, or raise --retries / --timeout.")


def parse_answer(response, redact=str):
    """The class names of a chat completion that should hold {"class_names": [str, ...]}.
    `redact`: applied to what an error shows of the answer, before it is cut short."""
    def excerpt(text):
        return repr(redact(text)[:EXCERPT])

    if not hasattr(response, "choices"):  # the client returns the text of a non-JSON body
        raise ValueError(f"not a chat completion: {excerpt(response)}")
    if not response.choices:
        raise ValueError("no choices in the response")
    choice = response.choices[0]
    content = choice.message.content
    if choice.finish_reason == "length":
        raise ValueError("the answer was cut off at the output limit; ask for fewer names "
                         "(--num-names)")
    if not content:
        refusal = getattr(choice.message, "refusal", None)
        raise ValueError(f"empty answer{f' (refusal: {redact(refusal)})' if refusal else ''}")
    try:
        obj = json.loads(content)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at character {exc.pos} of {excerpt(content)}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("class_names"), list):
        raise ValueError(f'expected {{"class_names": [...]}}, got {excerpt(content)}')
    return obj["class_names"]


def _messages_sha256(messages):
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode("utf-8")).hexdigest()


def _permanent_connection_error(exc):
    """Why a connection failed, when retrying cannot help (refused: nothing listens there;
    a host name DNS says does not exist), else None (timeouts, resets, DNS busy: retried)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused (nothing listens at that address and port)"
        if isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_NONAME:
            return "unknown host name (DNS has no such host)"
        exc = exc.__cause__ or exc.__context__
    return None


def _server_message(exc):
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
    return str(getattr(exc, "message", exc))


def _error_code(exc):
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner.get("code")
    return None


def _retry_after(exc):
    try:
        return float(exc.response.headers.get("retry-after"))
    except (TypeError, ValueError, AttributeError):
        return None
