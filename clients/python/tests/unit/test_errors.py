"""Ports test/unit/errors.test.ts: the error classes and their wire mapping (protocol §5, §5.1)."""
from __future__ import annotations

import builtins
import json
import unittest

from relais.protocol.errors import (
    BusyError, CancelledError, HandlerGoneError, InvalidMessageError, NoHandlerError, NotAuthorizedError, NotSentError,
    PayloadTooLargeError, RelaisError, RemoteError, RequestEndedError, ResponseCode, SiteUnreachableError, TimeoutError,
    UnknownTokenError, from_wire, to_wire,
)


class DiskFullError(Exception):
    response_code = 107
    details = {"disk": "sda"}


class ErrorsTest(unittest.TestCase):
    def test_a_module_error_keeps_its_code_and_details_across_the_wire(self) -> None:
        code, wire = to_wire(DiskFullError("disk sda is full"))
        self.assertEqual(code, 107)
        back = from_wire(json.loads(json.dumps(wire)), code, "vm-usb")
        self.assertIsInstance(back, RemoteError)
        self.assertEqual(back.response_code, 107)
        self.assertEqual(back.message, "disk sda is full")
        self.assertEqual(back.details, {"disk": "sda"})
        self.assertEqual(back.handler, "vm-usb")
        self.assertEqual(back.remote_name, "DiskFullError")

    def test_the_mapping_of_protocol_5_1_code_by_code(self) -> None:
        table = [
            (1, RemoteError), (2, InvalidMessageError), (3, NoHandlerError), (4, NotAuthorizedError), (5, CancelledError),
            (6, TimeoutError), (7, PayloadTooLargeError), (8, BusyError), (9, RemoteError), (100, RemoteError),
        ]
        for code, klass in table:
            with self.subTest(code=code):
                back = from_wire({"name": "X", "message": "m", "details": {"d": 1}}, code, "h", {"p": 1})
                self.assertIs(type(back), klass)
                self.assertEqual(back.message, "m")
                if klass is RemoteError:
                    self.assertEqual((back.response_code, back.payload, back.details), (code, {"p": 1}, {"d": 1}))
                else:
                    self.assertIsInstance(back.cause, RemoteError)
                    self.assertIs(back.__cause__, back.cause)
                    self.assertEqual(back.cause.payload, {"p": 1})
                    self.assertEqual(back.response_code, code)
        self.assertEqual(from_wire(None, 1, "h").message, "handler h answered with code 1")

    def test_relais_codes_come_back_as_their_own_classes_with_the_remote_error_as_cause(self) -> None:
        for error, klass in ((NoHandlerError("x"), NoHandlerError), (NotAuthorizedError("x"), NotAuthorizedError),
                             (InvalidMessageError("x"), InvalidMessageError)):
            code, wire = to_wire(error)
            back = from_wire(wire, code, "h")
            self.assertIsInstance(back, klass, f"{error.name} -> {back.name}")
            self.assertIsInstance(back.cause, RemoteError)

    def test_the_refusals_of_a_kill_travel_as_code_2_and_come_back_as_their_own_classes(self) -> None:
        for error, klass, code_name in (
            (UnknownTokenError("token t is not in the history", details={"token": "t"}), UnknownTokenError, "UNKNOWN_TOKEN"),
            (RequestEndedError("request t has already ended", details={"token": "t", "kind": "final", "code": 0}), RequestEndedError, "REQUEST_ENDED"),
        ):
            code, wire = to_wire(error)
            self.assertEqual(code, ResponseCode.INVALID_REQUEST)
            self.assertEqual(wire["name"], klass.__name__)
            back = from_wire(json.loads(json.dumps(wire)), code, "relais-router")
            self.assertIsInstance(back, klass)
            self.assertIsInstance(back, InvalidMessageError, "still a code-2 error for whoever does not tell them apart")
            self.assertEqual(back.code, code_name)
            self.assertEqual(back.details, error.details)
        other = from_wire({"name": "InvalidMessageError", "message": "bad query"}, ResponseCode.INVALID_REQUEST, "relais-router")
        self.assertIs(type(other), InvalidMessageError)
        self.assertIs(type(from_wire({"name": "__class__", "message": "x"}, 2, "h")), InvalidMessageError)

    def test_a_site_unreachable_error_is_a_no_handler_error_with_its_site(self) -> None:
        back = from_wire({"name": "SiteUnreachableError", "message": "down", "details": {"site": "b", "since": 5}}, 3, "relais-router")
        self.assertIsInstance(back, SiteUnreachableError)
        self.assertIsInstance(back, NoHandlerError)
        self.assertEqual((back.details, back.code), ({"site": "b", "since": 5}, "SITE_UNREACHABLE"))
        self.assertIs(type(from_wire({"name": "SiteUnreachableError", "message": "x", "details": {}}, 3, "h")), NoHandlerError)

    def test_a_plain_raise_becomes_code_1_and_never_code_0(self) -> None:
        self.assertEqual(to_wire(Exception("boom")), (1, {"name": "Exception", "message": "boom"}))
        zero = ValueError("x")
        zero.response_code = 0  # type: ignore[attr-defined]
        self.assertEqual(to_wire(zero)[0], 1)
        self.assertEqual(to_wire("a string")[1]["message"], "a string")
        self.assertEqual(to_wire(True)[0], 1)
        flagged = ValueError("x")
        flagged.code = True  # type: ignore[attr-defined]
        self.assertEqual(to_wire(flagged)[0], 1, "a boolean is no code")

    def test_every_class_has_a_stable_code_and_extends_relais_error(self) -> None:
        timeout = TimeoutError("late")
        self.assertIsInstance(timeout, RelaisError)
        self.assertIsInstance(timeout, builtins.TimeoutError, "except TimeoutError catches it")
        self.assertEqual((timeout.code, timeout.name, timeout.response_code), ("TIMEOUT", "TimeoutError", 6))
        for error, code, response_code in ((HandlerGoneError("x"), "HANDLER_GONE", 1), (NotSentError("x"), "NOT_SENT", 1),
                                           (CancelledError("x"), "CANCELLED", 5), (BusyError("x"), "BUSY", 8)):
            self.assertEqual((error.code, error.response_code), (code, response_code))
            self.assertEqual(to_wire(error), (response_code, {"name": type(error).__name__, "message": "x"}))

    def test_a_subclass_keeps_the_wire_name_of_a_relais_class_and_an_application_one_its_own(self) -> None:
        class LateError(TimeoutError):
            pass

        class AppError(RelaisError):
            pass

        self.assertEqual(LateError("x").name, "TimeoutError")
        self.assertEqual(AppError("APP", "x", response_code=150).name, "AppError")
        self.assertEqual(to_wire(AppError("APP", "x", response_code=150)), (150, {"name": "AppError", "message": "x"}))


if __name__ == "__main__":
    unittest.main()
