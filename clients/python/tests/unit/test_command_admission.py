"""Ports test/unit/command-admission.test.ts: the checks a handler makes of a message on its
request topics (protocol §4.2), each verdict, and the order of the protocol's table."""
from __future__ import annotations

import json
import unittest
from typing import Any

from relais.protocol.command_admission import ReplyTo, admit_command
from relais.protocol.envelope import decode

NOW = 1_000_000


class View:
    def __init__(self, serving: str = "yes", known: tuple[str, ...] = ()) -> None:
        self._serving = serving
        self._known = known
        self.self_id = "svc"

    def serving(self, action: str) -> str:
        return self._serving

    def knows(self, key: str) -> bool:
        return key in self._known


def admit(targeted: bool = False, serving: str = "yes", known: tuple[str, ...] = (), **fields: Any):
    message = {"v": 1, "type": "command", "source": "req", "destination": "*", "token": "t1", "payload": {}, **fields}
    message = {k: v for k, v in message.items() if v is not None}
    return admit_command("demo/a", targeted, decode(json.dumps(message)), 1, NOW, View(serving, known), lambda: "made-up")


def code(verdict) -> Any:
    return (verdict.answer.code if verdict.answer else None, verdict.answer.not_run if verdict.answer else False) if verdict.kind == "drop" else verdict.kind


class CommandAdmissionTest(unittest.TestCase):
    def test_a_valid_command_for_an_action_served_runs_it_wants_an_acknowledgement_only_with_accept_by(self) -> None:
        plain = admit()
        self.assertEqual(plain.kind, "run")
        self.assertFalse(plain.wants_acks)
        acked = admit(acceptBy=NOW + 10)
        self.assertTrue(acked.wants_acks)
        self.assertEqual(acked.to, ReplyTo("demo/a", "req", "t1", "normal", 1))
        self.assertEqual(acked.key, "req t1")

    def test_no_token_the_answers_carry_one_made_up(self) -> None:
        self.assertEqual(admit(token=None).to.token, "made-up")

    def test_dropped_without_answer(self) -> None:
        # Not a command, another destination (untargeted), a bad source, a built-in action untargeted.
        for fields, options in (({"type": "notification"}, {}), ({"destination": "other"}, {}), ({"source": "a+b"}, {}), ({}, {"serving": "targeted-only"})):
            with self.subTest(fields=fields, options=options):
                verdict = admit(**options, **fields)
                self.assertEqual(verdict.kind, "drop")
                self.assertIsNone(verdict.answer)
        self.assertEqual(admit(targeted=True, destination="other").kind, "run", "a targeted topic ignores destination")
        self.assertEqual(admit(destination="svc").kind, "run", "its own id as destination")

    def test_answered_and_not_run(self) -> None:
        # Not served (code 3), starting (code 3), past its deadline (code 6), past its acceptBy (code 6, not run).
        self.assertEqual(code(admit(serving="no", targeted=True)), (3, False))
        self.assertEqual(code(admit(serving="starting")), (3, False))
        self.assertRegex(admit(serving="starting").answer.error["message"], "svc does not serve demo/a yet: it is starting")
        self.assertEqual(code(admit(deadline=NOW)), (6, False))
        self.assertEqual(code(admit(acceptBy=NOW - 1)), (6, True))
        self.assertRegex(admit(acceptBy=NOW - 1).answer.error["message"], "reached svc 1 ms after its acceptance deadline")
        self.assertEqual(code(admit(acceptBy=0)), (6, True))
        self.assertRegex(admit(acceptBy=0).answer.error["message"], "is not known here")
        self.assertEqual(admit(acceptBy=NOW).kind, "run", "acceptBy is the last instant it may start")
        self.assertEqual(admit(deadline=NOW + 1).kind, "run")

    def test_in_the_order_of_the_table(self) -> None:
        # Not served before duplicate, duplicate before deadline and acceptBy.
        self.assertEqual(admit(deadline=NOW - 5, serving="no", known=("req t1",)).kind, "drop")
        self.assertEqual(admit(deadline=NOW - 5, acceptBy=0, known=("req t1",)).kind, "duplicate",
                         "a status query for a known command is answered from what is remembered")

    def test_an_invalid_envelope_is_answered_code_2_only_when_its_sender_can_be_read(self) -> None:
        unreadable = admit_command("demo/a", False, decode("not json"), 0, NOW, View(), lambda: "x")
        self.assertEqual(unreadable.kind, "drop")
        self.assertIsNone(unreadable.answer)
        readable = admit_command("demo/a", False, decode('{"v":1,"type":"command","source":"req","destination":"*","token":"t9","priority":"urgent","payload":{}}'),
                                 0, NOW, View(), lambda: "x")
        self.assertEqual((readable.answer.code, readable.answer.to.token, readable.answer.to.qos), (2, "t9", 0))


if __name__ == "__main__":
    unittest.main()
