"""`python -m relais`: a small command line over the client, for scripts and checks.

- `call ACTION [JSON | --file PATH] [--raw] [--target ID] [--timeout S] [--priority P] [--seal]`: prints
  each step as one JSON line; exit 0 on success, 1 on an error response or failure (its code and
  message on stderr), 2 for bad usage. `--file` sends a file's bytes (`-`: stdin) as a binary
  message (protocol §3.5); bytes received are shown as `<N bytes sha256 0123456789abcdef…>`, and
  with `--raw` a binary final payload is written to stdout as its bytes.
- `serve ACTION [--reply JSON | --reply-file PATH] [--directory full|on-demand]`: serves ACTION,
  answering the payload back (echo, bytes as bytes), the given JSON, or the bytes of a file; runs
  no command (by design). Stops on Ctrl-C or SIGTERM with a `stopped` presence. `--directory
  on-demand` (RELAIS_DIRECTORY): it follows the other clients' presences only once it needs them
  (a kill relayed by the router), not from its connection (protocol §7.2).
- `sub FILTER`: prints `topic payload` per message until Ctrl-C (bytes as their summary).

Common options: `--broker URL` (RELAIS_BROKER), `--id ID` (RELAIS_ID), `--username`,
`--password-file FILE` (else RELAIS_TOKEN), `--ca FILE`, `--signing-key FILE`, `--verify-keys FILE`,
`--sealing-key FILE[,FILE]` (RELAIS_SEALING_KEY: open what is sealed for this identity),
`--sealing-keys FILE` (RELAIS_SEALING_KEYS: whom `call --seal` seals for, and to whom a sealed
command is answered sealed), `-v` (log to stderr).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import signal
import socket
import sys
from typing import Any, Optional

from . import connect
from .protocol.errors import RelaisError
from .protocol.framing import is_bytes


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--broker", "-b", default=None, help="broker URL (mqtt://, mqtts://, ws://, wss://, unix:///path), or several separated by commas (env RELAIS_BROKER; default mqtt://127.0.0.1:1883)")
    common.add_argument("--id", default=None, help="client id on the bus (env RELAIS_ID; default py-<host>-<pid>)")
    common.add_argument("--username", default=None, help="MQTT user name")
    common.add_argument("--password-file", default=None, help="a file holding the password/token (else env RELAIS_TOKEN)")
    common.add_argument("--ca", default=None, help="PEM certificate(s) to trust for mqtts:// or wss:// (env RELAIS_CA)")
    common.add_argument("--signing-key", default=None, help="sign what this command sends with this Ed25519 private key (PEM file, "
                        "relais identity keygen; protocol §12; env RELAIS_SIGNING_KEY; needs python3-cryptography)")
    common.add_argument("--verify-keys", default=None, help="refuse received messages not signed by a key of this public keys file "
                        "(protocol §12.4; env RELAIS_VERIFY_KEYS; needs --signing-key)")
    common.add_argument("--sealing-key", default=None, help="open what is sealed for this identity with this X25519 private key "
                        "(the <identity>.sealing.key file of relais identity keygen --seal; during a rotation, the new and old keys' "
                        "files separated by a comma; protocol §3.6; env RELAIS_SEALING_KEY; needs python3-cryptography)")
    common.add_argument("--sealing-keys", default=None, help="the public sealing keys file (sealing-keys.json): whom --seal seals "
                        "for, and to whom a sealed command is answered sealed (protocol §12.5; env RELAIS_SEALING_KEYS)")
    common.add_argument("-v", "--verbose", action="store_true", help="log what the library does (to stderr)")
    parser = argparse.ArgumentParser(prog="python -m relais", description="Relais bus client (Python)")
    commands = parser.add_subparsers(dest="command", required=True)
    call = commands.add_parser("call", parents=[common], help="send a command and print its steps, one JSON line each")
    call.add_argument("action")
    call.add_argument("json", nargs="?", default=None, help="payload (JSON, default {})")
    call.add_argument("--file", default=None, help="send the bytes of this file as the payload (a binary message, protocol §3.5; '-' reads stdin)")
    call.add_argument("--raw", action="store_true", help="write a binary final payload to stdout as its bytes (default: <N bytes sha256 …>)")
    call.add_argument("--target", "-t", default=None, help="the one client that must handle it; '*' for every provider")
    call.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the final response (default 30)")
    call.add_argument("--priority", default="normal", choices=["realtime", "high", "normal", "low"])
    call.add_argument("--seal", action="store_true", help="seal the payload for the handler's identity (its answers come back "
                      "sealed for yours): with --sealing-keys and --sealing-key (protocol §3.6)")
    serve = commands.add_parser("serve", parents=[common], help="serve an action: echo the payload, or answer --reply")
    serve.add_argument("action")
    replies = serve.add_mutually_exclusive_group()
    replies.add_argument("--reply", default=None, help="JSON to answer with instead of the payload")
    replies.add_argument("--reply-file", default=None, help="answer with the bytes of this file (a binary message, protocol §3.5)")
    serve.add_argument("--directory", default=os.environ.get("RELAIS_DIRECTORY") or "full", choices=["full", "on-demand"],
                       help="when to follow every client's presence: full (at connect) or on-demand (from the first need; "
                       "for fleets of handlers, protocol §7.2; env RELAIS_DIRECTORY; default full)")
    sub = commands.add_parser("sub", parents=[common], help="print `topic payload` per message of an MQTT filter")
    sub.add_argument("filter")
    return parser


def _default_id(command: str) -> str:
    return os.environ.get("RELAIS_ID") or f"py-{command}-{socket.gethostname().replace('.', '-')}-{os.getpid()}"


def _connect_options(args: argparse.Namespace, ephemeral: bool) -> dict[str, Any]:
    password: Optional[str] = None
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as file:
            password = file.read().strip()
    signing_key = args.signing_key or os.environ.get("RELAIS_SIGNING_KEY") or None
    verify_keys = args.verify_keys or os.environ.get("RELAIS_VERIFY_KEYS") or None
    if verify_keys is not None and signing_key is None:
        raise ValueError("--verify-keys needs --signing-key too: a client that requires signatures must sign what it sends "
                         "(its own presence comes back to it)")
    sealing_key = args.sealing_key or os.environ.get("RELAIS_SEALING_KEY") or None
    sealing_keys = args.sealing_keys or os.environ.get("RELAIS_SEALING_KEYS") or None
    if getattr(args, "seal", False):
        if sealing_keys is None:
            raise ValueError("--seal needs --sealing-keys (RELAIS_SEALING_KEYS): the public sealing keys file holding the "
                             "handler identity's keys")
        if sealing_key is None:
            raise ValueError("--seal needs --sealing-key (RELAIS_SEALING_KEY): the answer comes back sealed for your "
                             "identity, and that private key opens it")
    return dict(id=args.id or _default_id(args.command), broker=args.broker, username=args.username, password=password,
                ca=args.ca or os.environ.get("RELAIS_CA") or None, ephemeral=ephemeral, signing_key=signing_key,
                trusted_keys=verify_keys, sealing_keys=sealing_keys,
                sealing_key=[key for key in sealing_key.split(",") if key] if sealing_key else None)


def bytes_summary(data: Any) -> str:
    """How a person sees bytes (as the TS CLI shows them): their count and the start of their SHA-256."""
    data = bytes(data)
    return f"<{len(data)} bytes sha256 {hashlib.sha256(data).hexdigest()[:16]}…>"


def json_with_bytes(value: Any) -> str:
    """Compact JSON of a value in which bytes, at any depth, read as their summary (never dumped)."""
    return bytes_summary(value) if is_bytes(value) else json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), default=lambda v: bytes_summary(v) if is_bytes(v) else str(v))


def _print(value: Any) -> None:
    sys.stdout.write(json_with_bytes(value) + "\n")
    sys.stdout.flush()


def _file_bytes(path: str, option: str) -> bytes:
    """The bytes of a file (stdin for `-`); ValueError naming the file (exit 2) when unreadable."""
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise ValueError(f"{option} {path}: {error.strerror or error}") from None


async def _call(args: argparse.Namespace) -> int:
    payload: Any
    if args.file is not None:
        if args.json is not None:
            print("--file sends the file as the payload: give no JSON argument with it", file=sys.stderr)
            return 2
        payload = _file_bytes(args.file, "--file")
    else:
        try:
            payload = json.loads("{}" if args.json is None else args.json)
        except ValueError as error:
            print(f"the payload is not JSON: {error}", file=sys.stderr)
            return 2
    async with connect(**_connect_options(args, ephemeral=True), timeout=args.timeout) as bus:
        async for step in bus.call(args.action, payload, target=args.target, timeout=args.timeout, priority=args.priority,
                                   seal=True if args.seal else None):
            # A binary final with --raw is its bytes, even in a pipe (that is what --raw is for).
            if args.raw and step.kind == "final" and is_bytes(step.payload):
                sys.stdout.buffer.write(step.payload)
                sys.stdout.buffer.flush()
                continue
            line: dict[str, Any] = {"kind": step.kind, "source": step.source}
            if step.progress is not None:
                line["progress"] = step.progress
            if step.kind != "accepted":
                line["payload"] = step.payload
            if step.kind == "final":
                line["code"] = step.code
            _print(line)
    return 0


async def _wait_for_stop() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await stop.wait()


async def _serve(args: argparse.Namespace) -> int:
    reply: Any = None
    if args.reply is not None:
        try:
            reply = json.loads(args.reply)
        except ValueError as error:
            print(f"--reply is not JSON: {error}", file=sys.stderr)
            return 2
    elif args.reply_file is not None:
        reply = _file_bytes(args.reply_file, "--reply-file")
    echo = args.reply is None and args.reply_file is None

    def answer(payload: Any, ctx: Any) -> Any:
        return payload if echo else reply

    async with connect(**_connect_options(args, ephemeral=False), directory=args.directory) as bus:
        await bus.serve(args.action, answer)
        print(f"serving {args.action} as {bus.id}", file=sys.stderr)
        await _wait_for_stop()
    return 0


async def _sub(args: argparse.Namespace) -> int:
    async with connect(**_connect_options(args, ephemeral=True)) as bus:
        subscription = await bus.subscribe(args.filter, include_invalid=True)
        waiting = asyncio.ensure_future(_wait_for_stop())
        async def read() -> None:
            async for message in subscription:
                body = json_with_bytes(message.payload) if message.envelope is not None else message.text
                sys.stdout.write(f"{message.topic} {body}\n")
                sys.stdout.flush()
        reading = asyncio.ensure_future(read())
        await asyncio.wait({waiting, reading}, return_when=asyncio.FIRST_COMPLETED)
        reading.cancel()
        waiting.cancel()
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    run = {"call": _call, "serve": _serve, "sub": _sub}[args.command]
    try:
        return asyncio.run(run(args))
    except RelaisError as error:
        print(f"{error.name} (code {error.response_code}): {error}", file=sys.stderr)
        return 1
    except (TypeError, ValueError) as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
