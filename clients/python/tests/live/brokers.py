"""A Mosquitto for the live tests: a free port on 127.0.0.1, an optional extra configuration,
stopped at the end. Skipped by the tests when Mosquitto is not installed."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

MOSQUITTO = os.environ.get("RELAIS_MOSQUITTO", "/usr/sbin/mosquitto")
HAVE_MOSQUITTO = bool(shutil.which(MOSQUITTO) or os.path.exists(MOSQUITTO))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mosquitto:
    def __init__(self, extra: str = "") -> None:
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._dir = tempfile.TemporaryDirectory(prefix="relais-py-live-")
        conf = os.path.join(self._dir.name, "mosquitto.conf")
        with open(conf, "w") as file:
            file.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{extra}\n")
        self.log_path = os.path.join(self._dir.name, "mosquitto.log")
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen([MOSQUITTO, "-c", conf, "-v"], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"mosquitto did not start on port {self.port}")
                time.sleep(0.05)

    def log(self) -> str:
        with open(self.log_path) as file:
            return file.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        self._dir.cleanup()
